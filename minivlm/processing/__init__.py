"""minivlm.processing: samples to model inputs, the Qwen-VL way.

Read in this order: :mod:`~minivlm.processing.resize` (smart resize),
:mod:`~minivlm.processing.images` (decode, RGB, normalise), :mod:`~minivlm.processing.patches`
(merge-window patch order), :mod:`~minivlm.processing.video` (frame sampling, timestamps),
:mod:`~minivlm.processing.media` (vision blocks), :mod:`~minivlm.processing.template` (chat
template, labels, rope segments), :mod:`~minivlm.processing.processor` (all of it, per sample).
"""

from minivlm.processing.images import load_rgb, normalised_tensor
from minivlm.processing.media import VIDEO_LAYOUTS, EncodedMedia, VisionBlock, VisionSpec, encode_image, encode_video
from minivlm.processing.patches import pad_to_temporal_patch, patch_positions, patchify
from minivlm.processing.processor import Processor, SampleError
from minivlm.processing.resize import MAX_ASPECT_RATIO, smart_resize
from minivlm.processing.template import RenderedChat, render_chat
from minivlm.processing.video import group_times, sample_frame_indices, timestamp_text

__all__ = [
    "MAX_ASPECT_RATIO", "VIDEO_LAYOUTS", "EncodedMedia", "Processor", "RenderedChat", "SampleError",
    "VisionBlock", "VisionSpec", "encode_image", "encode_video", "group_times", "load_rgb",
    "normalised_tensor", "pad_to_temporal_patch", "patch_positions", "patchify", "render_chat",
    "sample_frame_indices", "smart_resize", "timestamp_text",
]
