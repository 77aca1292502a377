import json

from musicgen.bench import run_benchmarks


def test_quick_benchmark_reports_every_figure(tiny_checkpoint):
    result = json.loads(json.dumps(run_benchmarks(tiny_checkpoint, "cpu", quick=True)))
    for key in ("generate_batch1_cached", "generate_batch4_cached", "generate_batch1_recompute"):
        assert result[key]["tokens_per_s"] > 0 and result[key]["wall_s"] > 0
    assert result["cache_vs_recompute_128_tokens"]["speedup"] > 0
    assert result["model_load_s"] >= 0 and result["prefill"]["tokens"] > 0
    assert result["machine"]["torch"]
