"""The `mt-bench` command line: argparse and printing live here and nowhere else."""
