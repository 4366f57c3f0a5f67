import json
import sys

from django.core.management.base import BaseCommand

from advisor.catalog_io import export_catalog


class Command(BaseCommand):
    help = "Write the whole catalog (GPUs, models, quantizations, known files) as JSON."

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?", help="output file (default: standard output)")

    def handle(self, *args, path=None, **options):
        text = json.dumps(export_catalog(), indent=2, ensure_ascii=False) + "\n"
        if path:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
            self.stderr.write(f"Catalog written to {path}.")
        else:
            sys.stdout.write(text)
