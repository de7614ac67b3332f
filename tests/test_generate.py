"""generate(): cached decoding equals the full forward for every preset and schedule."""

import pytest
import torch

from minivlm.data.collate import Collator
from minivlm.model import VLM, ModelConfig, decode_position_ids
from minivlm.rope import PRESETS, TextSegment, sequence_length

NEW_TOKENS = 6
ROPES = [{"schedule": "all", "variant": name} for name in PRESETS] + [
    {"schedule": "alternate", "variant": "circle", "partner": "mrope"},
    {"schedule": "lower", "variant": "circle", "partner": "mrope_interleaved"},
    {"schedule": "upper", "variant": "videorope", "partner": "rope1d"},
    {"schedule": ["circle", "mrope", "videorope", "rope1d"], "variant": None},
]


def decoding_model(tokenizer, rope: dict, **overrides) -> VLM:
    """A random model whose logits are spread enough (large init) that greedy tokens vary."""
    torch.manual_seed(0)
    config = ModelConfig(size="tiny", vocab_size=tokenizer.vocab_size, vit_dim=64, vit_heads=2, vit_depth=2,
                         lm_dim=128, lm_heads=2, lm_kv_heads=1, lm_layers=4, init_std=0.2,
                         deepstack_layers=(0, 1), rope=rope, **overrides)
    return VLM(config).eval()


def prompts(model: VLM, samples: list[dict], pad_id: int) -> dict:
    return Collator(model.lm.schedule, pad_id, max_tokens=1024, padding_side="left")(samples)


def extend_batch(batch: dict, tokens: torch.Tensor) -> dict:
    """The prompt batch followed by ``tokens (B, n)`` as text: the positions and visibility that
    cached decoding gives generated tokens, for one full forward."""
    positions = decode_position_ids(batch["next_position"], 0, tokens.shape[1])
    extended = dict(batch, labels=None)
    extended["input_ids"] = torch.cat([batch["input_ids"], tokens], dim=1)
    extended["position_ids"] = {key: torch.cat([ids, positions[key]], dim=2) for key, ids in batch["position_ids"].items()}
    if batch.get("document_ids") is not None:  # generated tokens join the document of the prompt's last token
        documents = batch["document_ids"]
        extended["document_ids"] = torch.cat([documents, documents[:, -1:].expand(-1, tokens.shape[1])], dim=1)
    return extended


def assert_cached_equals_full(model: VLM, batch: dict) -> torch.Tensor:
    tokens, logits = model.generate(batch, NEW_TOKENS, output_logits=True)
    full = model(extend_batch(batch, tokens), return_logits=True).logits
    start = batch["input_ids"].shape[1] - 1
    reference = full[:, start:start + tokens.shape[1]]
    assert torch.allclose(logits, reference, atol=1e-4), (logits - reference).abs().max()
    assert torch.equal(reference.argmax(-1), tokens)
    return tokens


@pytest.mark.parametrize("rope", ROPES, ids=lambda r: f"{r['schedule']}-{r['variant']}" if isinstance(r["schedule"], str)
                         else "list")
def test_cached_generate_equals_full_forward(tokenizer, media_samples, rope):
    model = decoding_model(tokenizer, rope)
    batch = prompts(model, media_samples, tokenizer.pad_id)  # image + video, image, text: left-padded
    tokens = assert_cached_equals_full(model, batch)
    assert len(set(tokens.flatten().tolist())) > 2  # the model's choices depend on the context


def test_left_padding_does_not_change_answers(tokenizer, media_samples):
    model = decoding_model(tokenizer, {"schedule": "alternate", "variant": "circle"})
    batch_tokens, batch_logits = model.generate(prompts(model, media_samples, tokenizer.pad_id), NEW_TOKENS,
                                                output_logits=True)
    for row, sample in enumerate(media_samples):
        alone_tokens, alone_logits = model.generate(prompts(model, [sample], tokenizer.pad_id), NEW_TOKENS,
                                                    output_logits=True)
        assert torch.equal(alone_tokens[0], batch_tokens[row])
        assert torch.allclose(alone_logits[0], batch_logits[row], atol=1e-4)


def end_after_vision(sample: dict) -> dict:
    """The sample cut right after its last vision block (before ``<|vision_end|>``)."""
    keep, length = [], 0
    for segment in sample["segments"]:
        if isinstance(segment, TextSegment) and keep and not isinstance(keep[-1], TextSegment):
            break
        keep.append(segment)
        length = sequence_length(keep)
    return dict(sample, input_ids=sample["input_ids"][:length], labels=sample["labels"][:length], segments=keep)


@pytest.mark.parametrize("variant", ["circle", "mrope", "videorope"])
def test_prompt_ending_right_after_a_vision_block(tokenizer, media_samples, variant):
    model = decoding_model(tokenizer, {"schedule": "alternate", "variant": variant, "partner": "rope1d"})
    cut = [end_after_vision(media_samples[1])]
    assert cut[0]["input_ids"][-1] == model.config.image_token_id
    assert_cached_equals_full(model, prompts(model, cut, tokenizer.pad_id))


def test_eos_stops_rows_and_sampling_is_seeded(tokenizer, media_samples):
    model = decoding_model(tokenizer, {"schedule": "all", "variant": "mrope"})
    batch = prompts(model, media_samples, tokenizer.pad_id)
    greedy = model.generate(batch, NEW_TOKENS)
    eos = int(greedy[0, 1])
    stopped = model.generate(batch, NEW_TOKENS, eos_token_id=eos)
    for row in stopped.tolist():  # once a row emits eos it keeps emitting it
        if eos in row:
            assert set(row[row.index(eos):]) == {eos}

    def sample(seed):
        return model.generate(batch, NEW_TOKENS, temperature=1.0, top_k=5,
                              generator=torch.Generator().manual_seed(seed))

    assert torch.equal(sample(1), sample(1))
    tokens, logits = model.generate(batch, NEW_TOKENS, temperature=1.0, top_k=5, output_logits=True,
                                    generator=torch.Generator().manual_seed(2))
    top5 = logits.topk(5, dim=-1).indices
    assert (top5 == tokens.unsqueeze(-1)).any(-1).all()


def test_generate_rejects_bad_requests(tokenizer, media_samples):
    model = decoding_model(tokenizer, {"schedule": "all", "variant": "mrope"})
    packed = Collator(model.lm.schedule, tokenizer.pad_id, max_tokens=1024, mode="pack")(media_samples)
    with pytest.raises(ValueError, match="padding_side='left'"):
        model.generate(packed, 2)
    batch = prompts(model, media_samples, tokenizer.pad_id)
    with pytest.raises(ValueError, match="exceeds the model's max_seq_len"):
        model.generate(batch, model.config.max_seq_len)
