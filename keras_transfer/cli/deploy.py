"""Taking a run away: export it to a runtime's file, or serve it over HTTP."""

from __future__ import annotations

from pathlib import Path

from keras_transfer.cli.options import add_common, command
from keras_transfer.base.paths import strict_json
from keras_transfer.base.errors import ConfigError, unknown_choice


def register(sub) -> None:
    from keras_transfer.serve.limits import Limits

    p = command(sub, "export", "export a run for ONNX Runtime, OpenVINO or LiteRT alone (uint8 images in, "
                               "calibrated probabilities out)",
                ["keras-transfer export runs/ants --format onnx openvino --int8",
                 "keras-transfer export runs/ants --format litert"], _cmd_export)
    p.add_argument("run", help="run folder")
    p.add_argument("--format", nargs="+", default=["onnx"], help="onnx, openvino and/or litert (.tflite)")
    p.add_argument("--int8", action="store_true",
                   help="also write onnx / openvino quantized to int8 by NNCF (calibrated on training images)")
    p.add_argument("--out", "-o", help="output file (one format, no --int8) or folder (default: <run>/export/)")
    add_common(p)
    d = Limits()
    p = command(sub, "serve", "serve runs over HTTP: REST API (/v1/predict) and a web page at /",
                ["keras-transfer serve runs/ants --port 8000",
                 "curl -F files=@bee.jpg http://127.0.0.1:8000/v1/predict"], _cmd_serve)
    p.add_argument("runs", nargs="+", help="run folders (the first is the default model)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    p.add_argument("--port", type=int, default=8000, help="TCP port")
    p.add_argument("--workers", type=int, default=1, help="server processes (each loads every run)")
    p.add_argument("--max-files", type=int, default=d.max_files, help="images per request")
    p.add_argument("--max-file-mb", type=float, default=d.max_file_bytes / 1e6, help="megabytes per image file")
    p.add_argument("--max-request-mb", type=float, default=d.max_request_bytes / 1e6, help="megabytes per request")
    p.add_argument("--max-megapixels", type=float, default=d.max_pixels / 1e6, help="pixels of one image, millions")
    p.add_argument("--max-batch", type=int, default=d.max_batch, help="images gathered into one engine call")
    p.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms,
                   help="how long a waiting image waits for others to join its batch")
    p.add_argument("--max-queue", type=int, default=d.max_queue, help="requests waiting; beyond: 503 + Retry-After")
    p.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every API request (default: "
                                    "$KERAS_TRANSFER_TOKEN; /v1/health stays open); the page asks for it once")
    p.add_argument("--quiet", "-q", action="store_true", help="log warnings only")


def _cmd_export(args) -> int:
    from keras_transfer.export.build import FORMATS, INT8_FORMATS, SUFFIX, export_run, require_litert, require_nncf
    from keras_transfer.export.parity import format_parity, write_parity
    from keras_transfer.run import RunModel

    run = RunModel.open(args.run)
    for fmt in args.format:  # every format checked before the first file is written
        if fmt not in FORMATS:
            raise unknown_choice("export format", fmt, FORMATS)
    if args.int8:  # a missing package or a format without int8 is said before any file is written
        if not_int8 := [f for f in args.format if f not in INT8_FORMATS]:
            raise ConfigError(f"--int8 is not available for {', '.join(not_int8)}",
                              f"--int8 with --format {' and/or '.join(INT8_FORMATS)}", " ".join(args.format),
                              hint=f"export {', '.join(not_int8)} in a command without --int8")
        require_nncf()
    if "litert" in args.format:
        require_litert()
    folder = Path(args.out) if args.out and (len(args.format) > 1 or args.int8) else None
    files = {}
    for fmt in args.format:
        for int8 in (False, True) if args.int8 else (False,):
            name = f"model{'.int8' if int8 else ''}{SUFFIX[fmt]}"
            files[f"{fmt}-int8" if int8 else fmt] = export_run(run, fmt, folder / name if folder else args.out, int8,
                                                               parity=False)
    rows = write_parity(run, files)
    print(strict_json(rows) if args.json else format_parity(rows))
    return 0


def _cmd_serve(args) -> int:
    from keras_transfer.serve import Limits, serve

    for name in ("max_file_mb", "max_request_mb", "max_megapixels", "max_wait_ms"):  # CLI units: bounded
        if not 0 < getattr(args, name) <= 1e6:  # before they are converted (1e308 MB would overflow)
            raise ConfigError(f"invalid --{name.replace('_', '-')}", "a positive number up to 1e6",
                              str(getattr(args, name)))
    limits = Limits(args.max_files, int(args.max_file_mb * 1e6), int(args.max_request_mb * 1e6),
                    int(args.max_megapixels * 1e6), args.max_batch, args.max_wait_ms, args.max_queue)
    serve(args.runs, args.host, args.port, args.workers, limits, args.quiet, args.token)
    return 0
