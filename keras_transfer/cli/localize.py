"""Where the object is: ``keras-transfer localize RUN IMAGES`` (boxes from CAM / Grad-CAM maps)."""

from __future__ import annotations


def register(sub) -> None:
    pass
