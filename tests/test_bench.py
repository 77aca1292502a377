import json

from musicgen.bench import run_benchmarks


def test_quick_benchmark_reports_every_figure(tiny_checkpoint):
    result = json.loads(json.dumps(run_benchmarks([tiny_checkpoint], "cpu", quick=True, full=True)))
    figures = result["checkpoints"][tiny_checkpoint.name]
    for path in ("torch-eager", "onnx-int8"):
        for batch in ("batch1", "batch4"):
            run = figures[path][batch]
            assert run["tokens_per_s"] > 0 and run["wall_s"] > 0 and run["real_time_factor"] > 0
        assert figures[path]["batch4_cost_vs_batch1"] > 0
    assert figures["recompute_batch1_64_tokens"]["tokens_per_s"] > 0
    assert figures["cache_speedup_vs_recompute"] > 0
    assert figures["model_load_s"] >= 0 and figures["prefill"]["tokens"] > 0
    run = figures["torch-eager"]["batch1"]  # a token model steps ~3.8 times per note (MAESTRO)
    assert run["steps_per_note"] >= 3 and run["tokens_per_s"] > run["notes_per_s"] > 0
    studio = figures["studio"]
    assert 0 < studio["first_sound_s"] < studio["final_take_s"]
    assert result["machine"]["torch"] and result["machine"]["cpu"]
