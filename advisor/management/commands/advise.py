"""`python manage.py advise`: the estimator from the command line (a fixed interface other tools use)."""

import json
import os
from dataclasses import replace

from django.core.management.base import BaseCommand, CommandError

from advisor import estimate as est
from advisor import quant as quant_types
from advisor.hardware import this_machine
from advisor.models import GPU, KnownFile, LanguageModel
from advisor.recommend import architecture_for, hardware_for

KV_TYPES = ["f16", "q8_0", "q4_0"]


def positive_float(text):
    value = float(text)
    if not 0 < value < 1e6:
        raise ValueError
    return value


class Command(BaseCommand):
    help = ("Estimate memory, GPU offload and speed for a GGUF file (--gguf) or a catalog model (--model, --quant) "
            "on a GPU (--gpu or --vram-gib) or, with neither, on this machine's CPU.")

    def add_arguments(self, parser):
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--gguf", metavar="PATH", help="a local GGUF file (only its header is read)")
        source.add_argument("--model", metavar="SLUG", help="a catalog model")
        parser.add_argument("--quant", metavar="TYPE", help="quantization for --model, e.g. Q4_K_M")
        parser.add_argument("--gpu", metavar="SLUG", help="a catalog GPU")
        parser.add_argument("--vram-gib", type=positive_float, metavar="X",
                            help="GPU memory in GiB (with --gpu: which of its sizes, e.g. the 8 or 16 GB card)")
        parser.add_argument("--ram-gib", type=positive_float, metavar="X", help="system RAM in GiB")
        parser.add_argument("--ram-reserve-gib", type=float, metavar="X",
                            help="RAM kept for the OS and other programs (default: 15%% of the RAM, at least 4 GiB)")
        parser.add_argument("--runtime", choices=list(est.RUNTIMES), default=est.DEFAULT_RUNTIME_NAME,
                            help="the program that runs the model: its defaults (flash attention, SWA cache, "
                                 "GPU margin) apply unless given")
        parser.add_argument("--ctx", type=int, default=None, metavar="N", help="context length (default: 4096)")
        parser.add_argument("--n-gpu-layers", type=int, default=None, metavar="N",
                            help="layers on the GPU (-1: all; default: the largest that fits)")
        parser.add_argument("--parallel", type=int, default=1, metavar="N",
                            help="sequences at once, each with a KV cache of --ctx tokens (this site's "
                                 "LLMSITE_PARALLEL slots, llama-server's --parallel with -c N times --ctx)")
        parser.add_argument("--kv-type", choices=KV_TYPES, default="f16")
        parser.add_argument("--flash-attn", action="store_true", default=None,
                            help="flash attention on (default: the runtime's)")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, **o):
        arch, quant_name = self._architecture(o)
        ctx = o["ctx"] if o["ctx"] is not None else 4096
        if not 1 <= ctx <= 10_000_000:
            raise CommandError("--ctx must be between 1 and 10,000,000.")
        parallel = o["parallel"]
        if not 1 <= parallel <= 256:
            raise CommandError("--parallel must be between 1 and 256.")
        if o["n_gpu_layers"] is not None and o["n_gpu_layers"] < -1:
            raise CommandError("--n-gpu-layers must be -1 (all) or a number of layers.")
        hardware = self._hardware(o)
        profile = est.RUNTIMES[o["runtime"]]
        flash = o["flash_attn"] if o["flash_attn"] is not None else profile.flash_attn and hardware.has_gpu
        runtime = est.Runtime(n_ctx=ctx * parallel, n_seq=parallel, kv_type=o["kv_type"], flash_attn=flash,
                              n_gpu_layers=o["n_gpu_layers"],
                              swa_full=profile.swa_full, n_batch=profile.n_batch, n_ubatch=profile.n_ubatch,
                              vram_margin=profile.vram_margin, expert_offload=profile.expert_offload)
        result = est.estimate(arch, quant_name, runtime, hardware)
        if o["json"]:
            self.stdout.write(json.dumps(result.to_dict(), indent=2))
            return
        self.stdout.write(f"{arch.name or 'model'} {quant_name or arch.quant} on {hardware.name or 'CPU'}, "
                          f"{profile.label}")
        for line in result.explanation:
            self.stdout.write(f"  {line}")

    def _architecture(self, o):
        if o["gguf"]:
            from advisor.gguf_info import GGUFError, read_gguf

            if o["quant"]:
                raise CommandError("--quant goes with --model; a GGUF file has its own quantization.")
            if not os.path.isfile(o["gguf"]):
                raise CommandError(f"No such file: {o['gguf']}")
            try:
                info = read_gguf(o["gguf"])
            except GGUFError as exc:
                raise CommandError(str(exc)) from None
            return info.architecture, None
        if not o["quant"]:
            raise CommandError("--model needs --quant (e.g. --quant Q4_K_M).")
        try:
            quant_name = quant_types.normalize_name(o["quant"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        model = LanguageModel.objects.filter(slug=o["model"]).first()
        if model is None:
            raise CommandError(f"No model {o['model']!r} in the catalog (see /api/advisor/models).")
        known = (KnownFile.objects.filter(model=model, quant__name=quant_name)
                 .values_list("size_bytes", flat=True).first())
        return architecture_for(model, quant_name, known), quant_name

    def _hardware(self, o):
        ram_gib = o["ram_gib"]
        reserve = o["ram_reserve_gib"]
        if reserve is not None and not 0 <= reserve < (ram_gib or 1e9):
            raise CommandError("--ram-reserve-gib must be at least 0 and less than the RAM.")
        if o["gpu"]:
            gpu = GPU.objects.filter(slug=o["gpu"]).first()
            if gpu is None:
                raise CommandError(f"No GPU {o['gpu']!r} in the catalog (see /api/advisor/gpus).")
            return hardware_for(gpu, o["vram_gib"], ram_gib or 32, reserve)
        if o["vram_gib"]:
            return hardware_for(None, o["vram_gib"], ram_gib or 32, reserve)
        machine = this_machine()
        if ram_gib:
            machine = replace(machine, ram_total=int(ram_gib * est.GIB))
        if reserve is not None:
            machine = replace(machine, ram_reserved=int(reserve * est.GIB))
        return machine
