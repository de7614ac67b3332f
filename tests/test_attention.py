"""Document masks: flex_attention block masks equal the dense masked SDPA, for training, generation and the ViT."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from conftest import chat_sample, noise_image

from minivlm.data.collate import Collator
from minivlm.model import VLM, ModelConfig
from minivlm.model.attention import DocumentMask, use_kernel
from minivlm.model.mask_memory import main, mask_bytes

TOLERANCE = 1e-5


@pytest.fixture(autouse=True)
def quiet_eager_flex():
    # On CPU flex_attention runs eagerly (exact, unfused) and says so on every call.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        yield


@pytest.fixture(scope="module")
def samples(processor) -> list[dict]:
    """Frames of three sizes (an image, a video of smaller frames, a wide image) and text only."""
    frames = [noise_image(30 + i, 32, 16) for i in range(4)]
    return [
        chat_sample(processor, "image", "Which colour?", "red", images=[noise_image(3, 32, 48)]),
        chat_sample(processor, "video", "What moved?", "the dot", videos=[{"frames": frames, "fps": 2.0}]),
        chat_sample(processor, "wide", "Count the dots.", "three", images=[noise_image(4, 64, 32)]),
        chat_sample(processor, "text", "Say hi.", "hi"),
    ]


def model_for(tokenizer, init_std: float = 0.02) -> VLM:
    """A small random model; a large ``init_std`` spreads the logits so that greedy tokens vary."""
    torch.manual_seed(0)
    config = ModelConfig(size="tiny", vocab_size=tokenizer.vocab_size, vit_dim=64, vit_heads=2, vit_depth=2,
                         lm_dim=128, lm_heads=2, lm_kv_heads=1, lm_layers=2, init_std=init_std,
                         deepstack_layers=(0,), rope={"schedule": "alternate", "variant": "circle"})
    return VLM(config).eval()


def dense_reference(q, k, v, documents: torch.Tensor, causal: bool) -> torch.Tensor:
    """The masked SDPA the model used before document masks: a (B, L, L) bool mask from the documents."""
    allowed = documents[:, :, None] == documents[:, None, :]
    if causal:
        allowed &= torch.ones(documents.shape[1], documents.shape[1], dtype=torch.bool).tril()
    return F.scaled_dot_product_attention(q, k, v, attn_mask=allowed[:, None])


@pytest.mark.parametrize("causal", [True, False])
def test_block_mask_attention_equals_dense_masked_sdpa(causal):
    torch.manual_seed(0)
    # Documents of 70, 130 and 60 tokens then 40 of padding: tiles cut through documents.
    documents = torch.tensor([0] * 70 + [1] * 130 + [2] * 60 + [-1] * 40).repeat(2, 1)
    documents[1] = torch.tensor([0] * 200 + [-1] * 100)
    q, k, v = (torch.randn(2, 2, 300, 16) for _ in range(3))
    reference = dense_reference(q, k, v, documents, causal)
    for kernel in ("flex", "sdpa"):
        with use_kernel(kernel):
            mask = DocumentMask(documents, causal=causal)
            assert mask.kernel == kernel
            out = mask.attend(q, k, v)
        assert (out - reference).abs().max() < TOLERANCE, kernel


def test_packed_training_batch_same_loss_and_logits_under_both_kernels_and_unpacked(tokenizer, samples):
    model = model_for(tokenizer)
    packed = Collator(model.lm.schedule, tokenizer.pad_id, max_tokens=160, mode="pack")(samples)
    assert packed["input_ids"].shape[0] < len(samples)  # several samples share a row
    outputs = {}
    for kernel in ("flex", "sdpa"):
        with use_kernel(kernel), torch.no_grad():  # flex on CPU has no backward: forward only
            outputs[kernel] = model(packed, return_logits=True)
    assert (outputs["flex"].logits - outputs["sdpa"].logits).abs().max() < TOLERANCE
    assert abs(float(outputs["flex"].loss) - float(outputs["sdpa"].loss)) < TOLERANCE
    # A packed row trains exactly like separate rows: the same mean loss over the same answer tokens.
    with torch.no_grad():
        unpacked = model(Collator(model.lm.schedule, tokenizer.pad_id, max_tokens=160)(samples)).loss
    assert abs(float(outputs["flex"].loss) - float(unpacked)) < TOLERANCE


def test_generation_same_tokens_and_logits_under_both_kernels(tokenizer, media_samples):
    model = model_for(tokenizer, init_std=0.2)
    prompts = Collator(model.lm.schedule, tokenizer.pad_id, max_tokens=1024, padding_side="left")(media_samples)
    results = {}
    for kernel in ("flex", "sdpa"):
        with use_kernel(kernel):
            results[kernel] = model.generate(prompts, 5, output_logits=True)
    assert torch.equal(results["flex"][0], results["sdpa"][0]) and len(set(results["flex"][0].flatten().tolist())) > 2
    assert (results["flex"][1] - results["sdpa"][1]).abs().max() < TOLERANCE


def test_vit_flat_run_with_frame_documents_equals_padded_frames(tokenizer, samples):
    model = model_for(tokenizer)
    batch = Collator(model.lm.schedule, tokenizer.pad_id, max_tokens=1024)(samples)
    sizes = (batch["vision_grid"][:, 1] * batch["vision_grid"][:, 2]).unique()
    assert len(sizes) == 3  # frames of three sizes: the padded layout pads, the flat run does not
    arguments = (batch["pixel_values"], batch["vision_grid"], batch["patch_positions"])
    with torch.no_grad():
        with use_kernel("flex"):
            flat, flat_stacked = model.vision(*arguments)
        with use_kernel("sdpa"):
            padded, padded_stacked = model.vision(*arguments)
    assert (flat - padded).abs().max() < TOLERANCE
    assert (flat_stacked[0] - padded_stacked[0]).abs().max() < TOLERANCE


def test_block_mask_is_far_smaller_than_the_dense_mask():
    documents = torch.arange(8).repeat_interleave(256).repeat(4, 1)  # 4 rows of 8 samples of 256 tokens
    with use_kernel("flex"):
        block = DocumentMask(documents).nbytes()
    with use_kernel("sdpa"):
        dense = DocumentMask(documents).nbytes()
    assert dense == 4 * 2048 * 2048 and block * 100 < dense


def test_unknown_kernel_names_the_choices():
    with pytest.raises(ValueError, match="unknown attention kernel 'fast'; valid kernels: auto, flex, sdpa"):
        with use_kernel("fast"):
            pass


def test_mask_memory_table_measures_both_kernels(capsys):
    assert mask_bytes(2, 512, 4)["sdpa"] == 2 * 512 * 512
    main(["--rows", "2", "--lengths", "256", "512"])
    assert "| 512 | 0.5 MB |" in capsys.readouterr().out
