"""How a dataset puts a character in its 28x28 frame, learnt from its training images,
so that a drawing can be framed the same way before a model sees it.

MNIST's images were made by scaling each digit's longer side to 20 px and pasting it
so that its centre of mass is central; Kuzushiji-MNIST and Fashion-MNIST instead fill
the frame (median ink extent 28 px) and centre the ink's box. A drawing scaled to
MNIST's 20 px is too small for a kana model (measured: 70% of re-drawn test characters
recognised at 20 px, 89% at 28 px).

    >>> framing = learn_framing(dataset.train_images)     # uint8 (N, 28, 28)
    >>> framing.to_dict()
    {'extent': 28.0, 'centring': 'box', 'centre_y': 13.5, 'centre_x': 13.5}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

CENTRINGS = ("mass", "box")
INK_THRESHOLD = 0.25    # of an image's strongest ink: the same cut prepare_drawing crops a drawing at
FRAME = 28
SAMPLE = 20_000         # images enough for stable medians (the quartiles move by < 0.1 px beyond this)


@dataclass(frozen=True)
class Framing:
    """Where a character's ink goes in the 28x28 frame.

    extent: the ink box's longer side, in pixels (the ink is scaled to it, aspect kept).
    centring: "mass" puts the centre of mass at (centre_y, centre_x); "box" puts the
        centre of the ink's box there. Pixel coordinates: 0 is the first pixel's centre,
        so 13.5 is the middle of the frame.
    """
    extent: float
    centring: str
    centre_y: float = 13.5
    centre_x: float = 13.5

    def __post_init__(self):
        if not 1 <= self.extent <= FRAME:
            raise ValueError(f"a framing's extent must be 1 to {FRAME} px, got {self.extent}")
        if self.centring not in CENTRINGS:
            raise ValueError(f"a framing's centring must be one of {', '.join(CENTRINGS)}, got {self.centring!r}")
        if not (0 <= self.centre_y <= FRAME - 1 and 0 <= self.centre_x <= FRAME - 1):
            raise ValueError(f"a framing's centre must lie in the frame, got ({self.centre_y}, {self.centre_x})")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "Framing":
        """The inverse of to_dict; ValueError (never KeyError or TypeError) for anything else."""
        try:
            return cls(float(values["extent"]), str(values["centring"]),
                       float(values.get("centre_y", 13.5)), float(values.get("centre_x", 13.5)))
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise ValueError(f"not a framing: {values!r} ({error})") from None

    def describe(self) -> str:
        """For a caption: 'longer side scaled to 20 px, centred by its centre of mass'."""
        how = "its centre of mass" if self.centring == "mass" else "its box"
        return f"longer side scaled to {self.extent:g} px, centred by {how}"


# MNIST's own recipe (LeCun et al.): 20 px, centre of mass. learn_framing on the 60,000
# training images gives exactly this, with the centre of mass at pixel (14.0, 14.0).
MNIST_FRAMING = Framing(20.0, "mass", 14.0, 14.0)

# What learn_framing finds on the official training sets (tests/test_framing.py checks these
# against the real data when it is there): what a run of them records, and what a run trained
# before runs recorded their framing is given.
KNOWN_FRAMINGS = {
    "mnist": MNIST_FRAMING,
    "kmnist": Framing(28.0, "box", 13.5, 13.5),
    "fashion": Framing(28.0, "box", 13.5, 13.5),
}


def ink_boxes(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For (N, H, W) images (uint8 or float), the ink mask (pixels above INK_THRESHOLD of
    each image's maximum), the box (N, 4) as top, bottom, left, right (inclusive) and the
    ink itself as float. Blank images get an empty mask and a box of -1s."""
    x = images.float()
    peak = x.amax(dim=(1, 2), keepdim=True)
    mask = (x > INK_THRESHOLD * peak) & (peak > 0)
    ink = torch.where(mask, x / peak.clamp(min=1e-12), torch.zeros((), dtype=x.dtype))
    boxes = []
    for hit in (mask.any(2), mask.any(1)):               # rows, then columns
        index = torch.arange(hit.shape[1], dtype=torch.float32)
        first = torch.where(hit, index, torch.tensor(float("inf"))).amin(1)
        last = torch.where(hit, index, torch.tensor(-1.0)).amax(1)
        boxes += [torch.where(hit.any(1), first, torch.tensor(-1.0)), last]
    return mask, torch.stack(boxes, 1), ink


def learn_framing(images: torch.Tensor, sample: int = SAMPLE) -> Framing:
    """The framing convention of a set of (N, 28, 28) training images: the median of the
    ink boxes' longer sides, and whichever centring (centre of mass or box centre) varies
    least across the images, with its median position. Blank images are ignored; with no
    ink at all this is MNIST's framing."""
    if images.dim() != 3 or tuple(images.shape[1:]) != (FRAME, FRAME):
        raise ValueError(f"learn_framing needs (N, {FRAME}, {FRAME}) images, got {tuple(images.shape)}")
    if len(images) > sample:  # a fixed, spread-out sample: the same answer on every call
        images = images[torch.linspace(0, len(images) - 1, sample).long()]
    mask, box, ink = ink_boxes(images)
    keep = mask.flatten(1).any(1)
    if not keep.any():
        return MNIST_FRAMING
    box, ink = box[keep], ink[keep]
    extent = torch.maximum(box[:, 1] - box[:, 0], box[:, 3] - box[:, 2]) + 1
    coords = torch.arange(FRAME, dtype=torch.float32)
    mass = ink.sum((1, 2))
    centres = {"mass": torch.stack([(ink.sum(2) * coords).sum(1) / mass, (ink.sum(1) * coords).sum(1) / mass], 1),
               "box": torch.stack([(box[:, 0] + box[:, 1]) / 2, (box[:, 2] + box[:, 3]) / 2], 1)}
    medians = {name: c.median(0).values for name, c in centres.items()}
    # How far each image's centre lies from the typical one: the convention is the one the images obey.
    spread = {name: (c - medians[name]).norm(dim=1).median().item() for name, c in centres.items()}
    centring = min(CENTRINGS, key=lambda name: spread[name])
    centre = medians[centring].clamp(0, FRAME - 1)
    return Framing(float(extent.float().median()), centring, round(float(centre[0]), 2), round(float(centre[1]), 2))


def framing_for_dataset(name: str, train_images: torch.Tensor | None = None) -> Framing:
    """A dataset's framing: the known one of a named dataset, else learnt from its training
    images when they are at hand, else MNIST's."""
    if name in KNOWN_FRAMINGS:
        return KNOWN_FRAMINGS[name]
    if train_images is not None and len(train_images):
        return learn_framing(train_images)
    return MNIST_FRAMING


def framing_of_record(framing: dict | None, dataset_name: str, train_images: torch.Tensor | None = None) -> Framing:
    """A run's framing: the one its record holds (its `framing` dict) when that is valid,
    otherwise framing_for_dataset."""
    if framing:
        try:
            return Framing.from_dict(framing)
        except ValueError:
            pass  # a hand-edited or damaged record: fall back as for an old run
    return framing_for_dataset(dataset_name, train_images)
