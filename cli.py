"""Entry point: ``python cli.py {fit,validate,test,predict,generate,features,report,fusion_sweep} ...``."""

import sys

from ur4rec.cli import main
from ur4rec.data.errors import DataFormatError

if __name__ == "__main__":
    try:
        result = main()
    except DataFormatError as err:  # bad input data: the message names the file and line; no traceback
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    if isinstance(result, int):
        raise SystemExit(result)
