"""A real colour dataset from the embedded digits, for trying (and testing) your own data:

    python scripts/coloured_digits.py outputs/coloured [--size 32] [--classes 10] [--per-class 60]

writes `outputs/coloured/folder/<class name>/*.png` (an image folder) and `outputs/coloured/tinted.npz`
(x, y and class_names): scikit-learn's 8×8 digits, upscaled and tinted by class, so that colour alone
separates the classes and an RGB model has colour to use.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# one hue per class
TINTS = np.array([[1.0, 0.25, 0.25], [0.25, 1.0, 0.25], [0.3, 0.45, 1.0], [1.0, 0.85, 0.2], [0.9, 0.3, 1.0],
                  [0.2, 0.95, 0.95], [1.0, 0.55, 0.1], [0.6, 0.6, 0.6], [0.55, 0.35, 0.15], [1.0, 0.5, 0.75]])


def coloured_digits(classes: int = 3, per_class: int = 60, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8×8 digits, upscaled to `size` px and tinted by class: uint8 (N, size, size, 3), labels."""
    from PIL import Image
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images, labels = [], []
    for c in range(classes):
        for image in bunch.images[bunch.target == c][:per_class]:
            grey = np.asarray(Image.fromarray((image / 16 * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR))
            images.append((grey[..., None] * TINTS[c]).astype(np.uint8))
            labels.append(c)
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def write_image_folder(root: Path, classes: int = 3, per_class: int = 60, size: int = 32) -> Path:
    """coloured_digits as PNGs in root/<class name>/, torchvision's ImageFolder layout."""
    from PIL import Image

    images, labels = coloured_digits(classes, per_class, size)
    for i, (image, label) in enumerate(zip(images, labels)):
        folder = root / DIGIT_NAMES[label]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(folder / f"{i:04d}.png")
    return root


def write_npz(path: Path, classes: int = 3, per_class: int = 60, size: int = 32, names: bool = True) -> Path:
    """coloured_digits as an npz of x/y, with a class_names array if `names`."""
    images, labels = coloured_digits(classes, per_class, size)
    extra = {"class_names": np.array(DIGIT_NAMES[:classes])} if names else {}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, x=images, y=labels, **extra)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--per-class", type=int, default=60)
    args = parser.parse_args()
    folder = write_image_folder(args.out / "folder", args.classes, args.per_class, args.size)
    npz = write_npz(args.out / "tinted.npz", args.classes, args.per_class, args.size)
    print(f"{args.classes * args.per_class} {args.size}-px colour images: {folder} and {npz}")


if __name__ == "__main__":
    main()
