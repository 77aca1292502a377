"""musicgen: continue a piano performance with a Transformer trained on MAESTRO.

The house, bottom to top: a module imports only modules above it in this list
(tests/test_layers.py holds it to that), so data flows one way, MIDI -> tokens -> model ->
tokens -> MIDI -> audio / picture, and any module reads without the ones below it.
"""

__version__ = "0.1.0"

MODULES = (
    "errors",  # typed errors whose messages are for the user
    "device",  # the machine: device, precision, processor name, cache root
    "midi",  # safe MIDI reading and writing, the prompt window, merging notes
    "midi_worker",  # parsing untrusted files in a process of their own
    "synth",  # FluidSynth audio
    "tokenizer",  # the performance encoding (miditok TSD) and its grammar
    "augment",  # training windows stretched, transposed, played louder or softer
    "model",  # the Transformer, its loss and KV cache
    "onnx_step",  # the CPU's int8 decoding step as one ONNX Runtime call
    "checkpoint",  # weights + config + tokenizer in a folder; training run folders
    "decoders",  # how a decoding step runs, and which one a machine uses
    "generate",  # sampling continuations under the grammar and time masks
    "rewrite",  # rewriting a passage inside a piece: sampled, then judged by what follows
    "data",  # MAESTRO's split or any MIDI folder, tokenized once into a cache; windows
    "evaluate",  # NLL of whole pieces
    "run_record",  # a training run's log and listening samples
    "finetune",  # the settings that suit fine-tuning on a small MIDI folder
    "train",  # the trainer
    "pianoroll",  # the piano-roll picture
    "player",  # the page's live player
    "recorder",  # the page's recorder
    "originality",  # the longest run a take shares with MAESTRO's train split
    "streaming",  # a take heard while it is written
    "compute",  # a loaded model, and the one thread all model work runs on
    "outcomes",  # what a request gives back: takes and passages with their files
    "studio",  # the one request layer the app and the CLI call
    "bench",  # speed figures
    "app_process",  # the app served by a process of its own (tests, benchmarks)
    "cli",  # python -m musicgen
    "__main__",
)
