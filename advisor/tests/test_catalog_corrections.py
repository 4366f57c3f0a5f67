"""Corrections to the shipped catalog reach databases made before them, and leave staff edits alone."""

import importlib

import pytest
from django.apps import apps

from advisor.catalog_io import read_seed
from advisor.models import GPU

pytestmark = pytest.mark.django_db
SLUG = "nvidia-geforce-rtx-5070-ti-laptop"
correction = importlib.import_module("advisor.migrations.0003_rtx_5070_ti_laptop_bandwidth")


def test_a_fresh_catalog_has_the_corrected_bandwidth():
    seed = next(g for g in read_seed()["gpus"] if g["slug"] == SLUG)
    assert seed["memory_bandwidth_gbs"] == 672.0 == GPU.objects.get(slug=SLUG).memory_bandwidth_gbs


def test_an_older_catalog_is_corrected():
    GPU.objects.filter(slug=SLUG).update(memory_bandwidth_gbs=576.0, source="old")
    correction.correct(apps, None)
    gpu = GPU.objects.get(slug=SLUG)
    assert gpu.memory_bandwidth_gbs == 672.0 and "28 Gbps" in gpu.source


def test_a_value_staff_changed_is_left_alone():
    GPU.objects.filter(slug=SLUG).update(memory_bandwidth_gbs=600.0, source="measured by staff")
    correction.correct(apps, None)
    gpu = GPU.objects.get(slug=SLUG)
    assert (gpu.memory_bandwidth_gbs, gpu.source) == (600.0, "measured by staff")
