"""Shared fixtures: a tiny Llama saved to disk and tiny LoRA/AdaLoRA skills trained on it (no downloads)."""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import string
import tempfile
import warnings
from pathlib import Path


def _point_hub_clients_at_localhost() -> None:
    """huggingface_hub reads HF_ENDPOINT / HF_HUB_DISABLE_XET / HF_HOME once, at import, and `import samdkif_peft`
    (which the Hub plugin below triggers) imports it through peft: so set them here, with the standard library only."""
    if os.environ.get("HF_ENDPOINT", "").startswith("http://127.0.0.1:"):
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    home = tempfile.mkdtemp(prefix="samdkif-hf-home-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    os.environ.update(
        HF_ENDPOINT=f"http://127.0.0.1:{port}", HF_HUB_DISABLE_XET="1", HF_TOKEN="hf_offline_test_token",
        HF_HUB_DISABLE_TELEMETRY="1", HF_HOME=home, HF_HUB_CACHE=os.path.join(home, "hub"), HF_HUB_OFFLINE="0",
    )  # fmt: skip


_point_hub_clients_at_localhost()

import pytest  # noqa: E402
import torch  # noqa: E402


# The offline Hub server fixtures (`hub_server`, `hub_repo_id`, `run_in_fresh_process`).
pytest_plugins = ["samdkif_peft.hub.testing"]

VOCAB = 96
EOS = "<|im_end|>"
SKILL_TARGETS = ["q_proj", "v_proj"]


def tiny_llama_config(**overrides):
    from transformers import LlamaConfig

    kwargs = dict(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    kwargs.update(overrides)
    return LlamaConfig(**kwargs)


def _save_base(path: Path, seed: int = 0, **overrides) -> str:
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    LlamaForCausalLM(tiny_llama_config(**overrides)).save_pretrained(path)
    return str(path)


def load_base(path: str):
    from transformers import LlamaForCausalLM

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LlamaForCausalLM.from_pretrained(path)
    return model.eval()


def train_adalora_skill(base_path: str, out: str, seed: int) -> str:
    """A real AdaLoRA run with budget allocation, so the saved skill is pruned to a per-module `rank_pattern`."""
    from peft import AdaLoraConfig, get_peft_model

    torch.manual_seed(seed)
    config = AdaLoraConfig(
        init_r=6, target_r=2, total_step=4, tinit=0, tfinal=1, deltaT=1, lora_alpha=12,
        target_modules=SKILL_TARGETS, init_lora_weights=False,
    )  # fmt: skip
    model = get_peft_model(load_base(base_path), config)
    model.train()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.05)
    x = torch.randint(3, VOCAB, (2, 8))
    for step in range(4):
        model(input_ids=x, labels=x).loss.backward()
        optimizer.step()
        model.base_model.update_and_allocate(step)
        optimizer.zero_grad()
    model.save_pretrained(out)
    return out


def make_lora_skill(base_path: str, out: str, seed: int, **lora_kwargs) -> str:
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    kwargs = dict(r=4, lora_alpha=8, target_modules=SKILL_TARGETS, init_lora_weights=False)
    kwargs.update(lora_kwargs)
    get_peft_model(load_base(base_path), LoraConfig(**kwargs)).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory) -> dict:
    """Base model dir plus three skills: LoRA r4, rsLoRA r2 with rank/alpha patterns, pruned AdaLoRA."""
    root = tmp_path_factory.mktemp("tiny")
    base = _save_base(root / "base")
    skills = {
        "alpha": make_lora_skill(base, str(root / "skill-alpha"), seed=1),
        "beta": make_lora_skill(
            base,
            str(root / "skill-beta"),
            seed=2,
            r=2,
            lora_alpha=16,
            use_rslora=True,
            rank_pattern={"v_proj": 3},
            alpha_pattern={"v_proj": 5},
        ),  # fmt: skip
        "gamma": train_adalora_skill(base, str(root / "skill-gamma"), seed=3),
    }
    return {"root": root, "base": base, "skills": skills}


@pytest.fixture
def base_model(tiny_assets):
    return load_base(tiny_assets["base"])


@pytest.fixture
def inputs():
    torch.manual_seed(123)
    input_ids = torch.randint(3, VOCAB, (2, 7))
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids)}


def randomize_router(model, std: float = 0.5, seed: int = 7) -> None:
    """Routers start uniform; give them non-trivial weights so tests can tell skills apart."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "skill_router_" in name:
                param.copy_(torch.randn(param.shape, generator=gen) * std)


def char_tokenizer():
    """A character-level fast tokenizer built offline; pad == eos and no BOS, like SmolLM2's."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate([EOS, "<|im_start|>", "<unk>", *string.printable])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one token per character
    tok.decoder = decoders.Fuse()
    # pad == eos and no BOS, as SmolLM2's tokenizer
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, pad_token=EOS, bos_token="<|im_start|>",
                                   unk_token="<unk>")  # fmt: skip


def save_char_base(path: Path) -> str:
    """The tiny Llama sized for `char_tokenizer`, saved with that tokenizer next to it (loadable by path alone)."""
    tokenizer = char_tokenizer()
    base = _save_base(path, vocab_size=len(tokenizer), eos_token_id=0, pad_token_id=0, bos_token_id=1,
                      max_position_embeddings=256)  # fmt: skip
    tokenizer.save_pretrained(base)
    return base


@pytest.fixture(scope="module")
def built_nli_ddi():
    """Slow tests on the real data: SmolLM2 prepared and the `nli` skill and `ddi_severity` task built (cached)."""
    from samdkif_peft.base_model import prepare_base_model
    from samdkif_peft.data import DataBuildConfig, build
    from samdkif_peft.data.fetch import default_cache_dir

    prepare_base_model()
    data = default_cache_dir() / "datasets"
    if not (data / "skills" / "nli" / "test.parquet").is_file() or not (data / "tasks" / "ddi_severity").is_dir():
        build(DataBuildConfig(out_dir=str(data), skills=["nli"], tasks=["ddi_severity"]))


os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
