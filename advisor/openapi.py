"""OpenAPI 3.1 description of the advisor's JSON API (checked by advisor/tests/test_api.py)."""

_number = {"type": "number"}
_integer = {"type": "integer"}
_string = {"type": "string"}

_result = {
    "type": "object",
    "required": ["model", "model_name", "quant", "fits", "n_gpu_layers", "n_layers", "offload_ratio", "gpu_bytes",
                 "cpu_bytes", "decode_tokens_per_s", "speedup_vs_cpu", "quality"],
    "properties": {
        "model": {**_string, "description": "catalog model slug"},
        "model_name": _string,
        "quant": {**_string, "description": "GGUF quantization, e.g. Q4_K_M"},
        "fits": {"type": "string", "enum": ["full", "partial", "cpu", "no"]},
        "n_gpu_layers": {**_integer, "description": "layers on the GPU (llama.cpp's count: blocks + output)"},
        "n_layers": _integer,
        "offload_ratio": {"type": "number", "minimum": 0, "maximum": 1},
        "gpu_bytes": _integer, "cpu_bytes": _integer, "weights_bytes": _integer, "kv_cache_bytes": _integer,
        "compute_buffer_bytes": _integer, "overhead_bytes": _integer,
        "decode_tokens_per_s": _number, "prompt_tokens_per_s": _number, "speedup_vs_cpu": _number,
        "quality": {**_number, "description": "the model's benchmark score (see /api/advisor/models)"},
        "score": {**_number, "description": "quality_used x (1 - quant_cost) x speed_factor: the ranking key"},
        "n_ctx": _integer, "n_cpu_moe": _integer,
        "placement": {"type": "string", "enum": ["gpu", "split", "experts", "cpu"],
                      "description": "all on the GPU, layers split, MoE experts in RAM (--n-cpu-moe), or CPU"},
        "quality_used": {**_number, "description": "the figure the score starts from (coding / reasoning for "
                                                  "those uses where the catalog has one)"},
        "quality_kind": {"type": "string", "enum": ["general", "code", "reasoning"]},
        "quality_estimated": {"type": "boolean", "description": "the quality comes from the estimate rule"},
        "quant_cost": {**_number, "description": "share of quality the quantization takes: min(0.5, KLD / 2)"},
        "speed_factor": {**_number, "description": "0.9 at the minimum speed to 1.0 at a comfortable 20 tok/s"},
        "low_bit": {"type": "boolean", "description": "1-2-bit: offered only because nothing better is fast enough"},
        "ram_reserve_bytes": {**_integer, "description": "system RAM left to the OS and other programs"},
        "runners_up": {"type": "array", "items": {"type": "object"},
                       "description": "the next options of the same model by the same rule"},
    },
}

_errors = {
    "type": "object",
    "required": ["errors"],
    "properties": {"errors": {"type": "object", "additionalProperties": {"type": "array", "items": _string}}},
}


def _param(name, schema, description, required=False):
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


SPEC = {
    "openapi": "3.1.0",
    "info": {"title": "llmsite advisor API", "version": "1",
             "description": "Which local LLMs, quantizations and GPU offloads run on a GPU, and how fast."},
    "paths": {
        "/api/advisor/gpus": {"get": {
            "summary": "The catalog's GPUs",
            "responses": {"200": {"description": "GPUs", "content": {"application/json": {"schema": {
                "type": "object", "required": ["gpus"],
                "properties": {"gpus": {"type": "array", "items": {"type": "object", "required": ["slug", "name"],
                    "properties": {"slug": _string, "name": _string, "vendor": _string,
                                   "vram_gib": {"type": "array", "items": _number},
                                   "memory_bandwidth_gbs": _number, "fp16_tflops": _number,
                                   "backend": _string}}}}}}}}},
        }},
        "/api/advisor/models": {"get": {
            "summary": "The catalog's models",
            "responses": {"200": {"description": "Models", "content": {"application/json": {"schema": {
                "type": "object", "required": ["models"],
                "properties": {"models": {"type": "array", "items": {"type": "object", "required": ["slug", "name"],
                    "properties": {"slug": _string, "name": _string, "family": _string, "params_b": _number,
                                   "n_layers": _integer, "context_length": _integer, "quality": _number}}}}}}}}},
        }},
        "/api/advisor/recommendations": {"get": {
            "summary": "Models that run on a GPU, best first",
            "parameters": [
                _param("gpu", _string, "catalog GPU slug; may be left out when vram_gib is given"),
                _param("vram_gib", {"type": "number", "minimum": 0.5, "maximum": 2048}, "GPU memory in GiB"),
                _param("ram_gib", {"type": "number", "minimum": 1, "maximum": 4096}, "system RAM in GiB (32)"),
                _param("ctx", {"type": "integer", "minimum": 512, "maximum": 1048576}, "context length (8192)"),
                _param("use", {"type": "string", "enum": ["", "chat", "code", "reasoning", "long"]}, "what for"),
                _param("min_speed", {"type": "number", "minimum": 0, "maximum": 10000}, "minimum tokens/s (8)"),
                _param("runtime", {"type": "string", "enum": ["llmsite", "llama-server", "lmstudio", "ollama"]},
                       "the program that runs the model (llmsite)"),
                _param("ram_reserve_gib", {"type": "number", "minimum": 0, "maximum": 4096},
                       "RAM kept for other programs (15% of the RAM, at least 4 GiB)"),
            ],
            "responses": {
                "200": {"description": "Ranked results", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["inputs", "results", "share_url"],
                    "properties": {
                        "inputs": {"type": "object"},
                        "catalog_version": _string,
                        "results": {"type": "array", "items": _result},
                        "almost": {"type": "array", "items": _result},
                        "alternatives": {"type": "array", "items": _result},
                        "share_url": {"type": "string", "format": "uri", "description":
                                      "the answer page for these inputs, whose Share button makes a permanent link"},
                    }}}}},
                "400": {"description": "Bad parameters, each named with what is wrong",
                        "content": {"application/json": {"schema": _errors}}},
                "429": {"description": "Too many new questions from this address; the Retry-After header says "
                                       "when to ask again (answers asked before still come at once)",
                        "content": {"application/json": {"schema": {
                            "type": "object", "required": ["error"], "properties": {"error": _string}}}}},
            },
        }},
    },
}
