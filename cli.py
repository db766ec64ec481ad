"""Entry point: ``python cli.py {fit,validate,test,predict,generate,features,report} ...``."""

import sys

from lightning.pytorch.utilities.exceptions import SIGTERMException

from ur4rec.cli import main
from ur4rec.data.download import DownloadError
from ur4rec.data.errors import DataFormatError
from ur4rec.errors import CheckpointError, ConfigError

if __name__ == "__main__":
    try:
        result = main()
    except (DataFormatError, ConfigError, CheckpointError, DownloadError) as err:  # expected: one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except SIGTERMException:  # the run saved on_exception.ckpt and said how to resume; a scheduler must see a failure
        raise SystemExit(143) from None
    if isinstance(result, int):
        raise SystemExit(result)
