"""Can torch.compile(mode="reduce-overhead") replace sac_v's own CUDA graph (`CudaGraphed`, --cudagraphs)?

    python benchmarks/reduce_overhead.py      # needs a CUDA GPU

Times sac_v's gradient step on a fixed synthetic batch, each variant alone in turn (no interleaving: on torch 2.11
the interleaved benchmark, `benchmarks/throughput.py --device cuda --reduce-overhead`, crashed with a segmentation
fault once both kinds of CUDA graph were live in one process): `--compile --cudagraphs` against the eager step given
to torch.compile(mode="reduce-overhead"), at the paper's 256×256/batch 256 and at 64×64/batch 100.
"""

from __future__ import annotations

import statistics
import sys

import throughput
import torch

import sac_v

VARIANTS = {"compile+cudagraphs": {"compile": True, "cudagraphs": True}, "compile(reduce-overhead)": {}}


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("error: this comparison needs a CUDA GPU, and torch sees none")
    device, env = torch.device("cuda"), sac_v.make_env(throughput.ENV_ID)
    torch._dynamo.config.recompile_limit = 64  # one compiled Adam step per optimizer: more than the default 8
    for hidden_sizes, batch_size in (((256, 256), 256), ((64, 64), 100)):
        batch = throughput.synthetic_batch(env, batch_size, device)
        for name, flags in VARIANTS.items():
            torch._dynamo.reset()
            args = sac_v.Args(hidden_sizes=hidden_sizes, batch_size=batch_size, device="cuda", **flags)
            reduce_overhead = name == "compile(reduce-overhead)"
            step, _ = throughput.project_update_step(env, args, device, reduce_overhead)
            for _ in range(20):  # compile and record
                step(batch)
            rates = [throughput.updates_per_s(step, batch, 200, device) for _ in range(3)]
            size = "×".join(map(str, hidden_sizes))
            print(f"{size}, batch {batch_size}, {name}: {statistics.median(rates):,.0f} updates/s", flush=True)


if __name__ == "__main__":
    main()
