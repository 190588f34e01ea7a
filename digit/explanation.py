"""Serving side: what each layer of the network sees of an image, and which strokes decided the answer.

    e = explain(predictor, image)         # any image, as for digit.predict; a predictor or a Keras model
    e.prediction                          # the same Prediction as digit.predict(predictor, image)
    e.saliency                            # (28, 28): positive where a region supports the answer
    e.versus(e.prediction.runner_up)      # what makes it a 4 rather than a 9
    for name, activations in e.layers:    # the input, then every layer's output, input to output
        ...

Saliency is by occlusion: every 5x5 patch that holds ink (on a stride-2 grid) is hidden in turn,
filled with the background, and the change in the answer's log-odds is spread over the patch's
pixels (Zintgraf et al.'s "weight of evidence"; log-odds rather than probability, since a model
99.99% sure barely moves in probability). It needs only probabilities, all occluded images go to
the model in one batch, so it works with any engine the app serves with. The layers come from the
model's layers export (LiteRT, no TensorFlow: digit/serving.py), or from a Keras sub-model when
given a Keras model.

The pictures the app and `python -m digit explain` show are made here too, as RGB uint8 arrays:
feature-map grids (`maps_picture`), unit strips, the output, heat maps, kernels, and a sheet.
"""

from __future__ import annotations

import functools
import io
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from digit.config import IMAGE_SIZE, NUM_CLASSES
from digit.inference import Prediction, as_predictor, predict_prepared
from digit.preprocessing import INK_THRESHOLD, ink_bounding_box, ink_intensity, preprocess
from digit.serving import ModelError

PATCH = 5  # occlusion patch side, pixels of the 28x28 input
STRIDE = 2
TINY = 1e-30  # probabilities are clipped here before taking logs (a float32 softmax underflows to 0)
PICTURE_WIDTH = 352  # fits a phone's 390 px screen less Streamlit's margins
GAP = 2  # pixels between tiles
PAPER = 255  # the background between tiles: white, the page's own

STAGE_PARTS = ("BatchNormalization", "ReLU", "Activation", "LeakyReLU", "PReLU", "ELU", "Softmax")
NAMES = {"BatchNormalization": "batch norm", "ReLU": "ReLU", "relu": "ReLU", "softmax": "softmax"}


@dataclass(frozen=True)
class Explanation:
    """Why the model gave its answer for one image."""

    prediction: Prediction
    saliency: np.ndarray  # (28, 28) evidence for the answer: positive where the region supports it
    layers: list[tuple[str, np.ndarray]]  # ("input", (28, 28, 1)), then each layer's output without batch axis
    evidence: np.ndarray  # (10, 28, 28): the same for every class
    log_drops: np.ndarray  # (10, 28, 28): how much hiding each region lowers each class's log-probability
    kinds: dict[str, str] = field(default_factory=dict)  # layer name -> Keras class ("Conv2D", "Dense", ...)
    activations: dict[str, str] = field(default_factory=dict)  # layer name -> built-in activation ("relu", "")
    first_kernels: np.ndarray | None = None  # the first convolution's kernels, (3, 3, 1, filters)
    note: str = ""  # why the layers are missing, where they are
    occluded: int = 0  # occluded images the model ran on

    def versus(self, other: int) -> np.ndarray:
        """(28, 28): positive where a region makes it the answer rather than `other` (log p_answer - log p_other)."""
        if self.prediction.digit is None:
            return np.zeros((IMAGE_SIZE, IMAGE_SIZE))
        return self.log_drops[self.prediction.digit] - self.log_drops[other]


def explain(model_or_predictor, image: np.ndarray) -> Explanation:
    """Preprocess `image` the MNIST way, predict, and explain the answer (ImageError for an unreadable image)."""
    x = preprocess(image)
    if x is None:
        blank = Prediction(None, np.full(NUM_CLASSES, 1.0 / NUM_CLASSES), None)
        zeros = np.zeros((NUM_CLASSES, IMAGE_SIZE, IMAGE_SIZE))
        return Explanation(blank, zeros[0], [], zeros, zeros, note="a blank image")
    return explain_prepared(model_or_predictor, x)


def explain_prepared(model_or_predictor, x: np.ndarray, prediction: Prediction | None = None) -> Explanation:
    """Explain one preprocessed (28, 28) image; pass the `prediction` already made for it to skip making it again."""
    x = np.asarray(x, dtype=np.float32).reshape(IMAGE_SIZE, IMAGE_SIZE)
    prediction = prediction or predict_prepared(model_or_predictor, x)
    evidence, log_drops, occluded = occlusion(model_or_predictor, x)
    source, note = layer_source(model_or_predictor)
    layers, kinds, activations, kernels = [], {}, {}, None
    if source is not None:
        layers = [("input", x[..., np.newaxis]), *source.run(x)]
        kinds = {"input": "Input", **dict(zip(source.names, source.kinds, strict=True))}
        activations = dict(zip(source.names, source.activations, strict=True))
        kernels = source.first_kernels
    return Explanation(
        prediction, evidence[prediction.digit], layers, evidence, log_drops, kinds, activations, kernels, note, occluded
    )


# Occlusion


def occlusion(model_or_predictor, x: np.ndarray, patch: int = PATCH, stride: int = STRIDE):
    """Hide each inked patch in turn; returns (evidence, log_drops, images run), both maps (10, 28, 28).

    evidence[k] is the drop in class k's log-odds, log_drops[k] in its log-probability, each patch's
    drop spread evenly over its pixels and averaged over the patches that cover a pixel. A patch
    with no ink is not run: hiding background changes nothing, so its drop is exactly 0.
    """
    masks, spread = _windows(patch, stride)
    inked = np.flatnonzero(np.einsum("np,p->n", masks, x.reshape(-1)) > 0)
    batch = np.repeat(x.reshape(1, -1), len(inked) + 1, axis=0)
    batch[1:] *= 1.0 - masks[inked]  # row 0 stays whole: the baseline, from the same batch
    probabilities = np.clip(
        as_predictor(model_or_predictor).probabilities(batch.reshape(-1, IMAGE_SIZE, IMAGE_SIZE)), TINY, None
    )
    log_p = np.log(probabilities)
    rest = np.clip(probabilities.sum(axis=1, keepdims=True) - probabilities, TINY, None)  # 1 - p, without cancellation
    log_odds = log_p - np.log(rest)
    # einsum, not @: OpenBLAS threads on matrices this small cost 10-40 ms on a busy machine, einsum's loop 1 ms.
    evidence = np.einsum("nk,np->kp", log_odds[0] - log_odds[1:], spread[inked])
    log_drops = np.einsum("nk,np->kp", log_p[0] - log_p[1:], spread[inked])
    shape = (NUM_CLASSES, IMAGE_SIZE, IMAGE_SIZE)
    return evidence.reshape(shape), log_drops.reshape(shape), len(inked)


_WINDOWS: dict[tuple[int, int], tuple] = {}


def _windows(patch: int, stride: int):
    """The patches' pixel masks (n, 784), and each patch's share of every pixel it covers (n, 784)."""
    if (patch, stride) not in _WINDOWS:
        starts = list(range(0, IMAGE_SIZE - patch + 1, stride))
        if starts[-1] != IMAGE_SIZE - patch:  # the last row and column are covered too
            starts.append(IMAGE_SIZE - patch)
        windows = [(top, left) for top in starts for left in starts]
        masks = np.zeros((len(windows), IMAGE_SIZE, IMAGE_SIZE), np.float32)
        for mask, (top, left) in zip(masks, windows, strict=True):
            mask[top : top + patch, left : left + patch] = 1.0
        masks = masks.reshape(len(windows), -1)
        _WINDOWS[patch, stride] = (masks, masks.astype(np.float64) / masks.sum(axis=0))
    return _WINDOWS[patch, stride]


# Layers


def layer_source(model_or_predictor):
    """What gives every layer's output: (source, '') or (None, why not)."""
    try:
        if hasattr(model_or_predictor, "layers") and callable(model_or_predictor.layers):
            return model_or_predictor.layers(), ""  # a LiteRTPredictor: its layers export
        model = getattr(model_or_predictor, "model", model_or_predictor)  # a KerasPredictor's model
        if hasattr(model, "get_layer"):
            return keras_layers(model), ""
    except ModelError as error:
        return None, f"the layers cannot be shown: {error}"
    return None, "the layers cannot be shown for this kind of model"


_keras_sources: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def keras_layers(model) -> KerasLayers:
    """A Keras model's layer source, made once per model (imports TensorFlow: Keras is loaded anyway)."""
    source = _keras_sources.get(model)
    if source is None:
        source = _keras_sources[model] = KerasLayers(model)
    return source


class KerasLayers:
    """Every layer's output from a Keras sub-model: the same interface as serving.LayersExport."""

    def __init__(self, model) -> None:
        from digit.export import layers_model, layers_record

        record = layers_record(model)
        self.names, self.kinds, self.activations = record["names"], record["kinds"], record["activations"]
        kernels = record.get("first_kernels")
        self.first_kernels = np.asarray(kernels, np.float32) if kernels else None
        self.model = layers_model(model)

    def run(self, image: np.ndarray) -> list[tuple[str, np.ndarray]]:
        outputs = self.model([np.asarray(image, np.float32).reshape(1, IMAGE_SIZE, IMAGE_SIZE, 1)], training=False)
        return [(name, np.asarray(outputs[name])[0]) for name in self.names]


@dataclass(frozen=True)
class View:
    """One picture's worth of a layer: its name, a title, and its values ((H, W, C) maps or (N,) units)."""

    name: str
    title: str
    values: np.ndarray
    kind: str

    @property
    def shape_text(self) -> str:
        return "×".join(str(n) for n in self.values.shape)


def stage_views(e: Explanation) -> list[View]:
    """What a learner looks at: each convolution or dense layer after its batch norm and activation, then the output.

    Pooling, dropout and flatten are left out here (every_view shows them).
    """
    views: list[View] = []
    stage: list[str] = []
    layers = e.layers[1:]
    for i, (name, values) in enumerate(layers):
        kind = e.kinds.get(name, "")
        if kind in ("Conv2D", "Dense"):
            stage = [_part_name(name, kind, e.activations.get(name, ""))]
        elif kind in STAGE_PARTS and stage:
            stage.append(NAMES.get(kind, kind))
        else:
            stage = []
            continue
        following = e.kinds.get(layers[i + 1][0], "") if i + 1 < len(layers) else ""
        if following not in STAGE_PARTS:  # the stage ends here: show its last output
            is_output = i == len(layers) - 1 and values.shape == (NUM_CLASSES,)
            views.append(View(name, " → ".join(stage), values, "output" if is_output else kind))
            stage = []
    return views


def every_view(e: Explanation) -> list[View]:
    """Every layer as it is, input to output (note_for says which are not worth drawing)."""
    views = [
        View(
            name,
            "input" if name == "input" else _part_name(name, e.kinds.get(name, ""), e.activations.get(name, "")),
            values,
            e.kinds.get(name, ""),
        )
        for name, values in e.layers
    ]
    if len(views) > 1 and views[-1].values.shape == (NUM_CLASSES,):
        views[-1] = View(views[-1].name, views[-1].title, views[-1].values, "output")
    return views


def _part_name(name: str, kind: str, activation: str) -> str:
    return f"{name}: {kind}" + (f" + {NAMES.get(activation, activation)}" if activation else "")


def note_for(view: View, previous: View | None) -> str:
    """Why a layer is not drawn ('' where it is): dropout is the identity when predicting; flatten only reshapes."""
    if view.kind == "Dropout":
        return f"{view.name}: the same numbers as {previous.name if previous else 'before'} (dropout acts only in training)"
    if view.kind == "Flatten":
        return f"{view.name}: the {previous.shape_text if previous else ''} maps above in one row of {view.values.size:,} numbers"
    return ""


def strongest(values: np.ndarray, count: int = 3) -> list[int]:
    """The channels (last axis) or units with the highest mean activation, strongest first."""
    flat = values.reshape(-1, values.shape[-1]) if values.ndim > 1 else values.reshape(1, -1)
    return [int(i) for i in np.argsort(-flat.mean(axis=0), kind="stable")[:count]]


# Pictures: RGB uint8 arrays


def _diverging_lut() -> np.ndarray:
    # Blue (against) - white - red (for), as Matplotlib's "RdBu" reversed: readable on screen and in print.
    stops = np.array([[33, 102, 172], [146, 197, 222], [247, 247, 247], [244, 165, 130], [178, 24, 43]], float)
    positions = np.linspace(0, 255, len(stops))
    return np.stack([np.interp(np.arange(256), positions, stops[:, c]) for c in range(3)], axis=1).astype(np.uint8)


DIVERGING = _diverging_lut()
FOR, AGAINST = (230, 30, 40), (40, 110, 255)  # a heat map's red and blue, bright on the dark digit
SEQUENTIAL = cv2.applyColorMap(np.arange(256, dtype=np.uint8)[:, None], cv2.COLORMAP_VIRIDIS)[:, 0, ::-1].copy()


def colour(values: np.ndarray, scale: float, signed: bool) -> np.ndarray:
    """Values to RGB: viridis from 0 to `scale`, or blue-white-red from -scale to +scale."""
    scale = float(scale) if scale > 0 else 1.0
    if signed:
        index = np.clip((values / scale + 1.0) * 127.5, 0, 255)
        return DIVERGING[index.astype(np.uint8)]
    return SEQUENTIAL[np.clip(values / scale * 255.0, 0, 255).astype(np.uint8)]


def _columns_for(count: int) -> int:
    return count if count <= 8 else 8 if count <= 64 else 16


def maps_picture(values: np.ndarray, width: int = PICTURE_WIDTH) -> tuple[np.ndarray, list[int]]:
    """A layer's feature maps (H, W, C) as one grid, strongest channel first, on one scale for the whole layer.

    Returns the picture and the channel order shown. One scale, not one per map: a silent channel
    stays dark, so the strong ones stand out. Signed outputs (before an activation) are blue-white-red.
    """
    values = np.asarray(values, np.float32)
    if values.ndim == 2:
        values = values[..., np.newaxis]
    channels = values.shape[-1]
    signed = bool(values.min() < 0)
    strength = np.abs(values).mean(axis=(0, 1)) if signed else values.mean(axis=(0, 1))
    order = [int(i) for i in np.argsort(-strength, kind="stable")]
    columns = _columns_for(channels)
    rows = -(-channels // columns)
    tile = min(120, (width - GAP * (columns - 1)) // columns)
    rgb = colour(np.ascontiguousarray(values.transpose(2, 0, 1)), float(np.abs(values).max()), signed)  # (C, H, W, 3)
    picture = np.full((rows * tile + GAP * (rows - 1), columns * tile + GAP * (columns - 1), 3), PAPER, np.uint8)
    for position, channel in enumerate(order):
        row, column = divmod(position, columns)
        top, left = row * (tile + GAP), column * (tile + GAP)
        picture[top : top + tile, left : left + tile] = cv2.resize(
            rgb[channel], (tile, tile), interpolation=cv2.INTER_NEAREST
        )
    return picture, order


def units_picture(values: np.ndarray, width: int = PICTURE_WIDTH, per_row: int = 64) -> np.ndarray:
    """A dense layer's units as a strip of cells in their own order (64 a row), on one scale."""
    values = np.asarray(values, np.float32).reshape(-1)
    rows = -(-len(values) // per_row)
    columns = min(len(values), per_row)
    cell = max(2, (width - GAP * (columns - 1)) // columns) if columns <= 32 else width // columns
    gap = GAP if columns <= 32 else 0
    height = max(12, min(cell, 28))
    signed = bool(values.min() < 0)
    scale = float(np.abs(values).max())
    picture = np.full((rows * height + GAP * (rows - 1), columns * cell + gap * (columns - 1), 3), PAPER, np.uint8)
    colours = colour(values, scale, signed)
    for i, rgb in enumerate(colours):
        row, column = divmod(i, per_row)
        top, left = row * (height + GAP), column * (cell + gap)
        picture[top : top + height, left : left + cell] = rgb
    return picture


def output_picture(probabilities: np.ndarray, answer: int | None, width: int = PICTURE_WIDTH) -> np.ndarray:
    """The ten outputs as labelled cells, brighter for more probable, the answer framed."""
    cell = (width - GAP * (NUM_CLASSES - 1)) // NUM_CLASSES
    height = min(cell, 36)
    picture = np.full((height, NUM_CLASSES * cell + GAP * (NUM_CLASSES - 1), 3), PAPER, np.uint8)
    colours = colour(np.asarray(probabilities, np.float32), 1.0, signed=False)
    for digit, rgb in enumerate(colours):
        left = digit * (cell + GAP)
        ink = 0.0 if rgb.astype(int).sum() > 380 else 255.0
        label = _label(str(digit), cell, height)[..., np.newaxis]
        picture[:, left : left + cell] = (rgb * (1 - label) + ink * label).round().astype(np.uint8)
        if digit == answer:
            cv2.rectangle(picture, (left, 0), (left + cell - 1, height - 1), (230, 40, 40), 2)
    return picture


@functools.cache
def _label(text: str, width: int, height: int) -> np.ndarray:
    """A centred label's coverage (0 to 1), drawn once: OpenCV's text drawing costs ~1 ms a call on a busy machine."""
    size, _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 1)
    mask = np.zeros((height, width), np.uint8)
    origin = ((width - size[0]) // 2, (height + size[1]) // 2)
    cv2.putText(mask, text, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.6, 255, 1, cv2.LINE_AA)
    return mask.astype(np.float32) / 255.0


def heat_picture(saliency: np.ndarray, base: np.ndarray, size: int = 168, scale: float | None = None) -> np.ndarray:
    """A saliency map over a grayscale image (white ink on black): red supports, blue opposes, on a symmetric scale.

    `base` and `saliency` may differ in size (the drawing and its 28x28 map scaled onto it); the
    picture is `size` pixels on its longer side, each 28x28 pixel a crisp square.
    """
    base = np.clip(np.nan_to_num(np.asarray(base, np.float32)), 0.0, 1.0)
    saliency = np.asarray(saliency, np.float32)
    scale = float(scale if scale is not None else np.abs(saliency).max())
    ratio = size / max(base.shape)
    shape = (max(1, round(base.shape[1] * ratio)), max(1, round(base.shape[0] * ratio)))
    smooth = base.shape[0] > IMAGE_SIZE  # a drawing is smooth; a 28x28 image keeps its pixels
    interpolation = cv2.INTER_AREA if smooth and ratio < 1 else cv2.INTER_LINEAR if smooth else cv2.INTER_NEAREST
    gray = cv2.resize(base, shape, interpolation=interpolation)
    heat = cv2.resize(saliency, shape, interpolation=cv2.INTER_LINEAR if smooth else cv2.INTER_NEAREST)
    under = np.repeat((0.12 + 0.5 * gray)[..., np.newaxis], 3, axis=2) * 255  # the digit, dimmed, shows through
    weight = np.clip(np.abs(heat) / (scale if scale > 0 else 1.0), 0.0, 1.0)[..., np.newaxis] ** 0.6
    over = np.where(heat[..., np.newaxis] > 0, FOR, AGAINST).astype(np.float32)
    return (under * (1 - 0.9 * weight) + over * 0.9 * weight).round().astype(np.uint8)


def drawing_saliency(saliency: np.ndarray, x: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The drawing as ink (white on black, working size) and the 28x28 saliency scaled back onto it; None if blank.

    Preprocessing crops the ink, scales it to fit 20x20 and centres it by mass; this maps the ink's
    box in the 28x28 image onto the ink's box in the drawing (approximately: stroke thickness is
    normalised on the way, which moves the box's edges by a pixel or two).
    """
    ink = ink_intensity(image)
    box = ink_bounding_box(ink)
    rows = np.flatnonzero(x.max(axis=1) >= INK_THRESHOLD)
    cols = np.flatnonzero(x.max(axis=0) >= INK_THRESHOLD)
    if box is None or not rows.size:
        return None
    top, bottom, left, right = box
    scale = max(bottom - top, right - left) / max(rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0])
    # x's box centre lands on the drawing's box centre; pixel centres are at +0.5.
    cx, cy = (cols[0] + cols[-1] + 1) / 2, (rows[0] + rows[-1] + 1) / 2
    dx, dy = (left + right) / 2 - scale * cx, (top + bottom) / 2 - scale * cy
    matrix = np.array([[scale, 0, dx + 0.5 * scale - 0.5], [0, scale, dy + 0.5 * scale - 0.5]], np.float32)
    mapped = cv2.warpAffine(
        np.asarray(saliency, np.float32), matrix, (ink.shape[1], ink.shape[0]), flags=cv2.INTER_LINEAR
    )
    return ink, mapped


def kernels_picture(kernels: np.ndarray, width: int = PICTURE_WIDTH) -> np.ndarray:
    """The first convolution's kernels (3, 3, 1, F) as tiles in their own order, blue-white-red on one scale."""
    kernels = np.asarray(kernels, np.float32)
    tiles = kernels.reshape(kernels.shape[0], kernels.shape[1], -1)  # one tile per (input, filter) pair
    count = tiles.shape[-1]
    columns = _columns_for(count)
    rows = -(-count // columns)
    tile = min(60, (width - 2 * GAP * (columns - 1)) // columns)
    gap = 2 * GAP
    scale = float(np.abs(kernels).max())
    picture = np.full((rows * tile + gap * (rows - 1), columns * tile + gap * (columns - 1), 3), PAPER, np.uint8)
    for i in range(count):
        row, column = divmod(i, columns)
        image = cv2.resize(tiles[..., i], (tile, tile), interpolation=cv2.INTER_NEAREST)
        top, left = row * (tile + gap), column * (tile + gap)
        picture[top : top + tile, left : left + tile] = colour(image, scale, signed=True)
    return picture


def png_bytes(picture: np.ndarray) -> bytes:
    """A picture as PNG, compressed fast: at zlib's level 6 (PIL's and Streamlit's) the six grids of a
    stroke take ~16 ms to encode, at level 1 ~9 ms and 18% more bytes (about 80 kB a stroke)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def view_picture(view: View, e: Explanation, width: int = PICTURE_WIDTH) -> np.ndarray:
    """The picture for one view: a grid for maps, a strip for units, labelled cells for the output."""
    if view.kind == "output":
        return output_picture(e.prediction.probabilities, e.prediction.digit, width)
    if view.values.ndim == 3:
        return maps_picture(view.values, width)[0]
    return units_picture(view.values, width)


# The CLI's sheet


def sheet_rows(e: Explanation, image: np.ndarray, width: int = 760) -> list[tuple[list[np.ndarray], str]]:
    """The sheet's rows, top to bottom: (pictures side by side, caption); a note is a row without pictures."""
    p = e.prediction
    header = [
        enlarge_gray(p.model_input, 176),
        heat_picture(e.saliency, p.model_input, 176),
        heat_picture(e.versus(p.runner_up), p.model_input, 176),
    ]
    on_drawing = drawing_saliency(e.saliency, p.model_input, image)
    if on_drawing is not None:
        header.append(heat_picture(on_drawing[1], on_drawing[0], 176))
    rows = [
        (
            header,
            f"the input (28×28); what supports {p.digit} (red) and opposes it (blue); "
            f"{p.digit} rather than {p.runner_up}; the same on the drawing",
        )
    ]
    previous = None
    for view in every_view(e)[1:]:
        note = note_for(view, previous)
        if note:
            rows.append(([], note))
            continue
        rows.append(([view_picture(view, e, width)], f"{view.title}: {view.shape_text}"))
        previous = view
    return rows


def enlarge_gray(image: np.ndarray, size: int) -> np.ndarray:
    """A [0, 1] grayscale image as RGB, `size` pixels wide, each pixel a crisp square."""
    gray = (np.clip(np.asarray(image, np.float32), 0, 1) * 255).astype(np.uint8)
    return np.repeat(cv2.resize(gray, (size, size), interpolation=cv2.INTER_NEAREST)[..., np.newaxis], 3, axis=2)


def save_sheet(e: Explanation, image: np.ndarray, path: str | Path, title: str = "") -> Path:
    """One PNG: the input, the saliency (the answer, against the runner-up, on the drawing) and every layer."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    margin, line, gap, width = 20, 22, 12, 760
    rows = sheet_rows(e, image, width)
    heights = [line + (max(pic.shape[0] for pic in pictures) + gap if pictures else 0) for pictures, _ in rows]
    total = 2 * margin + 30 + sum(heights)
    figure = Figure(figsize=((width + 2 * margin) / 100, total / 100), dpi=100, facecolor="white")
    p = e.prediction
    figure.text(
        0.5,
        1 - (margin + 10) / total,
        title or f"{p.digit} ({p.confidence:.1%} sure; runner-up {p.runner_up})",
        ha="center",
        va="center",
        fontsize=13,
    )
    y = margin + 30  # from the top
    for (pictures, caption), height in zip(rows, heights, strict=True):
        figure.text(margin / (width + 2 * margin), 1 - (y + line / 2) / total, caption, va="center", fontsize=8.5)
        x = margin
        for picture in pictures:
            figure.figimage(picture, xo=x, yo=total - (y + line + picture.shape[0]), origin="upper")
            x += picture.shape[1] + gap
        y += height
    path = Path(path)
    figure.savefig(path, dpi=100)
    return path


def first_kernels(model_or_predictor) -> np.ndarray | None:
    """The first convolution's kernels, (3, 3, 1, filters), from the layers export or the Keras model; None if none."""
    source, _ = layer_source(model_or_predictor)
    return None if source is None else source.first_kernels
