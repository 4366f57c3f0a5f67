"""The catalog as JSON: the seed that migrations load, and export/import between installations.

One format everywhere: {"version": 1, "gpus": [...], "models": [...], "quantizations": [...],
"known_files": [...]}, each row keyed by the model's field names (known files name their model by slug
and their quantization by name). The seed in advisor/seed/ is the same rows split into one file per list.

Import is all or nothing: every row is validated first, and nothing is written when any row is bad.
The functions take an `apps` registry so the data migration can run them with historical models.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from django.apps import apps as global_apps
from django.core.exceptions import ValidationError
from django.db import models, transaction

FORMAT_VERSION = 1
SEED_DIR = Path(__file__).resolve().parent / "seed"

# list name in the JSON -> (model name, natural key field, fields exported besides the key)
SECTIONS = {
    "quantizations": ("Quantization", "name",
                      ["bits_per_weight", "kld", "ppl_delta", "recommended", "source"]),
    "gpus": ("GPU", "slug",
             ["name", "vendor", "family", "segment", "vram_gib", "memory_bandwidth_gbs", "fp16_tflops", "backend",
              "unified_memory", "gpu_memory_share", "gpu_memory_share_source", "release_year", "source"]),
    "models": ("LanguageModel", "slug",
               ["name", "family", "arch", "params_b", "active_params_b", "n_layers", "n_embd", "n_head", "n_head_kv",
                "head_dim", "head_dim_v", "n_ff", "n_expert", "n_expert_used", "n_ff_expert", "n_shared_expert",
                "n_dense_layers", "n_vocab", "context_length", "sliding_window", "swa_pattern", "tied_embeddings",
                "license", "quality", "quality_benchmark", "quality_source", "quality_estimated", "quality_code",
                "quality_code_source", "quality_reasoning", "quality_reasoning_source", "expert_tensor_type",
                "release_date", "uses", "source"]),
}
KNOWN_FILE_FIELDS = ["filename", "repo", "size_bytes", "source"]
OPTIONAL_KNOWN_FILE_FIELDS = {"repo": ""}  # older exports have none


class CatalogError(Exception):
    """The catalog data is not valid; `errors` lists every problem as 'section[i] key: message'."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__(f"{len(errors)} problem(s) in the catalog data:\n" + "\n".join(errors[:50]))


@dataclass
class ImportResult:
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        return ", ".join(f"{name}: {self.created.get(name, 0)} new, {self.updated.get(name, 0)} updated"
                         for name in [*SECTIONS, "known_files"])


def read_seed() -> dict:
    data = {"version": FORMAT_VERSION}
    for name in [*SECTIONS, "known_files"]:
        path = SEED_DIR / f"{name}.json"
        data[name] = json.loads(path.read_text()) if path.exists() else []
    return data


def export_catalog(apps=global_apps) -> dict:
    data = {"version": FORMAT_VERSION}
    for section, (model_name, key, fields) in SECTIONS.items():
        model = apps.get_model("advisor", model_name)
        rows = list(model.objects.order_by(key).values(key, *fields))
        for row in rows:  # JSON has no dates: ISO text, which import reads back
            for name, value in row.items():
                if hasattr(value, "isoformat"):
                    row[name] = value.isoformat()
        data[section] = rows
    known = apps.get_model("advisor", "KnownFile").objects.select_related("model", "quant")
    data["known_files"] = [
        {"model": row.model.slug, "quant": row.quant.name, **{f: getattr(row, f) for f in KNOWN_FILE_FIELDS}}
        for row in known.order_by("model__slug", "quant__name")
    ]
    return data


def _known_values(known_model, row: dict) -> dict:
    """A known file's fields, as far as `known_model` has them: a migration runs this with the model as it was
    then (0004 knew no `repo`)."""
    have = {f.name for f in known_model._meta.get_fields()}
    return {f: row.get(f, OPTIONAL_KNOWN_FILE_FIELDS.get(f)) for f in KNOWN_FILE_FIELDS if f in have}


def _messages(exc: ValidationError) -> list[str]:
    if hasattr(exc, "error_dict"):
        return [f"{name}: {' '.join(m for e in errs for m in e.messages)}" for name, errs in exc.error_dict.items()]
    return list(exc.messages)


def _check_shape(data) -> list[str]:
    if not isinstance(data, dict):
        return ["the catalog must be a JSON object"]
    if data.get("version", FORMAT_VERSION) != FORMAT_VERSION:
        return [f"unsupported catalog version {data.get('version')!r} (this site reads version {FORMAT_VERSION})"]
    errors = []
    for section in [*SECTIONS, "known_files"]:
        rows = data.get(section, [])
        if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
            errors.append(f"{section}: must be a list of objects")
    unknown = set(data) - {"version", *SECTIONS, "known_files"}
    if unknown:
        errors.append(f"unknown sections: {', '.join(sorted(map(str, unknown)))}")
    return errors


def _build(model, key, fields, row, existing):
    """An unsaved or updated instance for one row; unknown keys are errors."""
    unknown = set(row) - {key, *fields}
    if unknown:
        raise ValidationError(f"unknown fields: {', '.join(sorted(unknown))}")
    instance = existing.get(row.get(key)) or model()
    # A data migration runs this with the models of its time: fields added later are set by a later one.
    present = {f.name for f in model._meta.get_fields()}
    for name in [key, *fields]:
        if name in row and name in present:
            setattr(instance, name, _field_value(model._meta.get_field(name), row[name]))
    if model.__name__ == "GPU":  # historical models (migrations) have no custom save()
        sizes = row.get("vram_gib")
        instance.max_vram_gib = max(sizes) if isinstance(sizes, list) and sizes and all(
            isinstance(s, int | float) for s in sizes) else 0
    return instance


def _field_value(model_field, value):
    """The value as the field will store it, or ValidationError: full_clean() skips the empty values of
    blank fields ([] or {} for a number), and accepts NaN and infinity, which no estimate can use."""
    if isinstance(model_field, models.JSONField):
        return value
    if value in model_field.empty_values:
        if model_field.null:
            return None
        if isinstance(model_field, models.CharField | models.TextField):
            return ""
    try:
        value = model_field.to_python(value)
    except OverflowError:  # an integer with hundreds of digits for a float field
        raise ValidationError({model_field.name: "the number is too large"}) from None
    except TypeError:  # a number or a list for a date: Django's parser takes text only
        raise ValidationError({model_field.name: f"{value!r} is not a date (YYYY-MM-DD)"}) from None
    except ValidationError as exc:  # name the field: to_python's messages do not
        if hasattr(exc, "error_dict"):
            raise
        raise ValidationError({model_field.name: exc.messages}) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise ValidationError({model_field.name: f"{value} is not a finite number"})
    return value


def _is_key(value) -> bool:
    return isinstance(value, str) and bool(value)


def import_catalog(data, apps=global_apps) -> ImportResult:
    """Validate every row, then write them all in one transaction, or raise CatalogError and write nothing."""
    errors = _check_shape(data)
    if errors:
        raise CatalogError(errors)
    plan = {}  # section -> list of instances to save
    for section, (model_name, key, fields) in SECTIONS.items():
        model = apps.get_model("advisor", model_name)
        existing = model.objects.in_bulk(field_name=key)
        seen, instances = set(), []
        for index, row in enumerate(data.get(section, [])):
            label = f"{section}[{index}] {row.get(key)!r}"
            if not _is_key(row.get(key)):
                errors.append(f"{label}: {key} must be non-empty text")
                continue
            if row.get(key) in seen:
                errors.append(f"{label}: appears twice")
                continue
            seen.add(row.get(key))
            try:
                instance = _build(model, key, fields, row, existing)
                instance.full_clean(validate_unique=False, validate_constraints=False)
            except ValidationError as exc:
                errors.extend(f"{label}: {message}" for message in _messages(exc))
                continue
            instances.append(instance)
        plan[section] = (model, key, instances)

    model_slugs = {m.slug for m in plan["models"][2]} | set(
        apps.get_model("advisor", "LanguageModel").objects.values_list("slug", flat=True))
    quant_names = {q.name for q in plan["quantizations"][2]} | set(
        apps.get_model("advisor", "Quantization").objects.values_list("name", flat=True))
    known_model = apps.get_model("advisor", "KnownFile")
    known_rows, seen_pairs = [], set()
    for index, row in enumerate(data.get("known_files", [])):
        label = f"known_files[{index}] {row.get('filename')!r}"
        problems = []
        if set(row) - {"model", "quant", *KNOWN_FILE_FIELDS}:
            problems.append(f"unknown fields: {', '.join(sorted(set(row) - {'model', 'quant', *KNOWN_FILE_FIELDS}))}")
        if not _is_key(row.get("model")) or row.get("model") not in model_slugs:
            problems.append(f"model {row.get('model')!r} is not in the catalog")
        if not _is_key(row.get("quant")) or row.get("quant") not in quant_names:
            problems.append(f"quantization {row.get('quant')!r} is not in the catalog")
        elif _is_key(row.get("model")) and (row.get("model"), row.get("quant")) in seen_pairs:
            problems.append("a second file for the same model and quantization")
        size = row.get("size_bytes")
        if not isinstance(size, int) or isinstance(size, bool) or not 1_000_000 <= size < 2**63:
            problems.append("size_bytes must be a whole number of bytes, at least 1,000,000")
        else:
            try:  # lengths and the rest of the model's own validation
                known_model(**_known_values(known_model, row)).full_clean(
                    exclude=["model", "quant"], validate_unique=False, validate_constraints=False)
            except ValidationError as exc:
                problems.extend(_messages(exc))
        if not isinstance(row.get("repo", ""), str):  # full_clean() passes None for a blank field
            problems.append("repo must be text (owner/name), or left out")
        if not isinstance(row.get("filename"), str) or not row.get("filename") or not isinstance(
                row.get("source"), str) or not row.get("source"):
            problems.append("filename and source are required text")
        if _is_key(row.get("model")) and _is_key(row.get("quant")):
            seen_pairs.add((row.get("model"), row.get("quant")))
        errors.extend(f"{label}: {p}" for p in problems)
        known_rows.append(row)
    if errors:
        raise CatalogError(errors)

    result = ImportResult()
    with transaction.atomic():
        for section, (_model, _key, instances) in plan.items():
            result.created[section] = sum(1 for i in instances if i.pk is None)
            result.updated[section] = len(instances) - result.created[section]
            for instance in instances:
                instance.save()
        known_model = apps.get_model("advisor", "KnownFile")
        models_by_slug = apps.get_model("advisor", "LanguageModel").objects.in_bulk(field_name="slug")
        quants_by_name = apps.get_model("advisor", "Quantization").objects.in_bulk(field_name="name")
        created = 0
        for row in known_rows:
            _, was_created = known_model.objects.update_or_create(
                model=models_by_slug[row["model"]], quant=quants_by_name[row["quant"]],
                defaults=_known_values(known_model, row),
            )
            created += was_created
        result.created["known_files"] = created
        result.updated["known_files"] = len(known_rows) - created
    return result
