"""A run folder is complete or not there: what ``train`` writes, it writes all or removes.

``train`` computes everything first (features, the fit, the held-out metrics), then writes the
run's files, ``config.json`` last: ``Run.open`` needs it, so a folder whose writing stopped
half-way (even by SIGKILL) is never taken for a run. An interruption (Ctrl-C, SIGTERM, SIGHUP)
or an error removes the files of the unfinished run; what resumes a run stays: the shared
feature cache (outside the folder) and ``checkpoints/``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from keras_transfer.run.folder import Files

RUN_FILES = (Files.MODEL, Files.CONFIG, Files.CLASSES, Files.HEAD, Files.UNKNOWN, Files.CALIBRATION,
             Files.PREDICTIONS, Files.METRICS, Files.HISTORY, Files.DATASET, Files.TIMING, Files.AUDIT, Files.EXPORT)


class RunWriting:
    """``with RunWriting(out) as writing: ...; writing.commit(); <write files>; <write config.json>``.

    Attributes:
        out: The run folder.
        fresh: The folder did not exist before: an unfinished run leaves none behind.
        committing: The run's files are being written (an earlier run in the folder is gone).
    """

    def __init__(self, out: Path):
        self.out, self.fresh, self.committing = Path(out), not Path(out).exists(), False

    def __enter__(self) -> RunWriting:
        self.out.mkdir(parents=True, exist_ok=True)
        return self

    def commit(self) -> None:
        """From here the folder holds no run until ``config.json`` is written (last)."""
        self.committing = True
        (self.out / Files.CONFIG).unlink(missing_ok=True)

    def __exit__(self, kind, error, traceback) -> bool:
        if error is not None:
            kept = self.discard()
            if isinstance(error, KeyboardInterrupt):
                error.kept = kept  # the CLI's one line says it
        return False

    def discard(self) -> str:
        """Removes the unfinished run; returns what was kept, in words."""
        if self.committing or self.fresh:
            for name in RUN_FILES:
                path = self.out / name
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        if self.fresh:
            for path in self.out.iterdir():  # the run's own feature files (the shared cache keeps them)
                if path.name != Files.CHECKPOINTS:
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            if not any(self.out.iterdir()):
                self.out.rmdir()
                return f"no run folder was left at {self.out}"
            return f"{self.out} holds only {Files.CHECKPOINTS}/ to resume from (no run yet)"
        if self.committing:
            return f"the unfinished run in {self.out} was removed (its {Files.CHECKPOINTS}/ and features stay)"
        return f"the run folder {self.out} was left as it was"
