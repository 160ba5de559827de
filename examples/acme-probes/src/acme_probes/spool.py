"""`spool_depth`: count the files waiting in a spool directory.

A plain `def` probe: it reads the file system, which may block (a slow or
dead network mount), so the adapter runs it in a worker thread. If it is
still blocked when the check's timeout passes, the check fails "timed out",
and it is not started again until the blocked run returns.
"""

from __future__ import annotations

import os
import time
from typing import Annotated

import msgspec

from probes import Duration, Probe, Reason, Result, Status


class SpoolDepth(Probe):
    """Fails when more than max_files files wait in a directory (optionally: older ones only)."""

    class Options(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
        directory: Annotated[str, msgspec.Meta(min_length=1, description="the spool directory")]
        max_files: Annotated[
            int, msgspec.Meta(ge=0, description="fail when more files than this wait")
        ]
        older_than: Annotated[
            Duration | None,
            msgspec.Meta(description="count only files not modified for this long (stuck ones)"),
        ] = None

    config: Options

    def check(self) -> Result:
        options = self.config
        try:
            entries = list(os.scandir(options.directory))
        except FileNotFoundError:
            return Result(
                Status.FAIL,
                f"directory {options.directory} does not exist",
                reason=Reason.FILE_MISSING,
            )
        cutoff = time.time() - (options.older_than or 0)
        count = sum(
            1
            for entry in entries
            if entry.is_file(follow_symlinks=False)
            and entry.stat(follow_symlinks=False).st_mtime <= cutoff
        )
        what = f"{count} files" + (
            f" older than {options.older_than}" if options.older_than else ""
        )
        if count > options.max_files:
            return Result(
                Status.FAIL,
                f"{what} in {options.directory}, more than {options.max_files}",
                observed_value=count,
                observed_unit="files",
            )
        return Result(
            Status.PASS,
            f"{what} in {options.directory}",
            observed_value=count,
            observed_unit="files",
        )
