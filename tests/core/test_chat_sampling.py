"""Chat settings as a person sets them in the app or with `tuneforge chat`: temperature, top-p, answer length and a
system prompt, through llama.cpp on the real built-in model."""

from __future__ import annotations

import pytest

from tuneforge.core.chat import Sampling
from tuneforge.core.cli import main
from tuneforge.core.errors import ConfigError

pytestmark = pytest.mark.process  # llama.cpp answers in a child process


def test_sampling_settings_reach_llama_cpp(home, capsys):
    from tuneforge.core.models import default_gguf_path
    from tuneforge.exporters.gguf.chat import GgufChat

    question = [{"role": "user", "content": "Name three colours of the rainbow."}]
    model = GgufChat(default_gguf_path())
    try:
        greedy = "".join(Sampling().stream(model, question))
        assert greedy == "".join(Sampling().stream(model, question))  # greedy answers repeat
        short = "".join(Sampling(max_tokens=3).stream(model, question))
        assert short and greedy.startswith(short) and len(short) < len(greedy)
        told = "".join(Sampling(system="You answer every question with the single word: banana.").stream(model, question))
        assert told != greedy  # the system prompt is part of the conversation
        sampled = {"".join(Sampling(temperature=1.5, top_p=0.95, max_tokens=12).stream(model, question)) for _ in range(3)}
        assert len(sampled) > 1  # sampling varies from answer to answer
    finally:
        model.close()
    assert main(["chat", str(default_gguf_path()), "--prompt", "Hi", "--temperature", "5"]) == ConfigError.exit_code
    assert "temperature 0–2 (0 = greedy)" in capsys.readouterr().err
