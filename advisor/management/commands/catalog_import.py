import json

from django.core.management.base import BaseCommand, CommandError

from advisor.catalog_io import CatalogError, import_catalog


class Command(BaseCommand):
    help = "Load a catalog JSON file (from catalog_export). Every row is checked first; a bad row changes nothing."

    def add_arguments(self, parser):
        parser.add_argument("path", help="catalog JSON file")

    def handle(self, *args, path, **options):
        try:
            with open(path, encoding="utf-8") as handle:
                data = json.load(handle)
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}.") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CommandError(f"{path} is not valid JSON: {exc}.") from None
        except RecursionError:
            raise CommandError(f"{path} is nested too deeply to be a catalog.") from None
        try:
            result = import_catalog(data)
        except CatalogError as exc:
            raise CommandError(f"Nothing was imported. {exc}") from None
        self.stdout.write(self.style.SUCCESS(f"Catalog imported: {result.summary()}."))
