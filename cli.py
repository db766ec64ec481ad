"""Entry point: ``python cli.py {fit,validate,test,predict} --config configs/sasrec.yaml``."""

from ur4rec.cli import main

if __name__ == "__main__":
    main()
