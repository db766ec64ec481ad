"""Entry point: ``python cli.py {fit,validate,test,predict,generate,features} ...``."""

from ur4rec.cli import main

if __name__ == "__main__":
    result = main()
    if isinstance(result, int):
        raise SystemExit(result)
