"""Proof against llama.cpp itself: load the real GGUF files at several contexts, read the buffer sizes
llama.cpp reports, and compare: weights and KV cache within 2%, compute buffer within 10%; decode speed
on this CPU within a factor of 2 of the estimate, prompt speed within a factor of 3 (prompts use every
core, so they suffer most when the machine is shared)."""
import pytest

from advisor.tests.llama_probe import compare

pytestmark = pytest.mark.model
pytest.importorskip("llama_cpp")


@pytest.fixture(scope="module")
def smollm2_rows(smollm2_path):
    return compare(smollm2_path)


@pytest.fixture(scope="module")
def gemma3_rows(gemma3_path):
    return compare(gemma3_path)


def _check(rows, what, tolerance):
    checked = [r for r in rows if r["what"] == what]
    assert checked, f"llama.cpp reported no {what}"
    for r in checked:
        print(f"{r['case']:<48} {what:<9} {r['estimate'] / 2**20:9.2f} {r['llama_cpp'] / 2**20:9.2f} "
              f"{r['error']:+.2%}")
        assert abs(r["error"]) <= tolerance, r["case"]


def test_it_matches_smollm2_weights_within_2_percent(smollm2_rows):
    _check(smollm2_rows[0], "weights", 0.02)


def test_it_matches_smollm2_kv_cache_within_2_percent(smollm2_rows):
    _check(smollm2_rows[0], "kv cache", 0.02)


def test_it_matches_smollm2_compute_buffer_within_10_percent(smollm2_rows):
    _check(smollm2_rows[0], "compute", 0.10)


def test_it_matches_gemma3_weights_within_2_percent(gemma3_rows):
    _check(gemma3_rows[0], "weights", 0.02)


def test_it_matches_gemma3_repacked_weights_within_2_percent(gemma3_rows):
    _check(gemma3_rows[0], "repack", 0.02)


def test_it_matches_gemma3_sliding_window_kv_cache_within_2_percent(gemma3_rows):
    _check(gemma3_rows[0], "kv cache", 0.02)


def test_it_matches_gemma3_compute_buffer_within_10_percent(gemma3_rows):
    _check(gemma3_rows[0], "compute", 0.10)


def _speed(rows, what):
    (row,) = [r for r in rows if r["what"] == what]
    ratio = row["estimate"] / row["llama_cpp"]
    print(f"{row['case']:<34} {what:<13} estimate {row['estimate']:7.1f}  measured {row['llama_cpp']:7.1f}  "
          f"ratio {ratio:.2f}  (wall clock {row['wall']:7.1f})")
    return ratio


@pytest.mark.parametrize("model", ["smollm2", "gemma3"])
def test_it_estimates_cpu_decode_speed_within_a_factor_of_two(model, request):
    _, speed = request.getfixturevalue(f"{model}_rows")
    assert 0.5 <= _speed(speed, "decode tok/s") <= 2.0


@pytest.mark.parametrize("model", ["smollm2", "gemma3"])
def test_it_estimates_cpu_prompt_speed_within_a_factor_of_three(model, request):
    _, speed = request.getfixturevalue(f"{model}_rows")
    assert 1 / 3 <= _speed(speed, "prompt tok/s") <= 3.0
