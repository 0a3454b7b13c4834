"""Reading images into minicam's layout: ``(1, C, H, W)`` floats in [0, 1], read right.

:func:`load_image` maps every Pillow mode to [0, 1] by its own range,
composites transparency on a stated background, applies the EXIF
orientation, takes the first frame of an animation, refuses images above a
pixel limit from their header (before decoding) and resizes in Pillow (JPEGs
decoded at reduced scale) before any float array is made, so a large photo
costs about the memory of the model input. :func:`image_size` reads the
upright (height, width) without decoding.
"""

import contextlib
import warnings

import numpy as np

from ._validate import PARSE_ERRORS, check_bool, check_float, check_int, source_name

__all__ = ["load_image", "image_size", "MAX_IMAGE_PIXELS"]

MAX_IMAGE_PIXELS = 2**26
"""Largest image, in pixels (width x height), that :func:`load_image` decodes
by default: 67 M, an 8192 x 8192 image; a 24 or 48 megapixel photo passes."""

_ORIENTATION = 0x0112  # the EXIF tag
_TRANSPOSED = (5, 6, 7, 8)  # orientations that swap width and height
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


class _Refused(ValueError):
    """An image Pillow reads but minicam refuses (too large, values outside their range)."""


def _pillow():
    try:
        from PIL import Image, ImageOps
    except ImportError as err:
        raise ImportError("load_image needs Pillow, which minicam's core does not require: pip install pillow") from err
    return Image, ImageOps


def _open_image(Image, path, max_pixels, where):
    """Open ``path`` (reading its header only) and refuse it before decoding if it has too many pixels."""
    img = Image.open(path)
    if img.width * img.height > max_pixels:
        img.close()
        raise _Refused(
            f"image {where} has {img.width} x {img.height} = {img.width * img.height} pixels, more than "
            f"max_pixels = {max_pixels}; refused before decoding (a decompression bomb, or pass a larger max_pixels)"
        )
    return img


def _integer_white(img, where):
    """The value of white of an integer image (modes I;16* and I), after checking its values fit."""
    if img.mode in _SIXTEEN_BIT:
        return 65535.0
    tags = getattr(img, "tag_v2", {})  # a TIFF states its depth and signedness (one value per band)
    bits, sample_format = (v[0] if isinstance(v, tuple) else v for v in (tags.get(258, 16), tags.get(339, 1)))
    white = 2.0 ** (int(bits) - (sample_format == 2)) - 1
    low, high = img.getextrema()
    if low < 0 or high > white:
        raise _Refused(
            f"image {where} (mode I, {bits}-bit) has values in [{low}, {high}], outside [0, {white:.0f}]: "
            "its white is unknown; scale it to [0, 1] and save it as a float (mode F) image"
        )
    return white


def _working(img, mode, where):
    """``(image, white, alpha)``: ``img`` converted to the mode it is resized in.

    That mode is the image's own for 16-bit, 32-bit and float images (grey,
    resized in their own precision; ``white`` is the value that maps to 1),
    ``"LA"``/``"RGBA"`` for images with transparency, else ``mode`` itself
    (Pillow's conversions: palettes expanded, CMYK and YCbCr to RGB, RGB to L
    by ITU-R 601-2 luma).
    """
    if img.mode in _SIXTEEN_BIT or img.mode == "I":
        return img, _integer_white(img, where), False
    if img.mode == "F":
        values = np.asarray(img)
        if values.size and not (np.all(np.isfinite(values)) and values.min() >= 0 and values.max() <= 1):
            raise _Refused(
                f"image {where} (mode F, float) has values in [{np.nanmin(values)}, {np.nanmax(values)}]"
                f"{' and NaN' if np.isnan(values).any() else ''}; float images are read as already in [0, 1]"
            )
        return img, 1.0, False
    if img.has_transparency_data:
        if img.mode in ("La", "RGBa"):  # premultiplied alpha
            img = img.convert(img.mode.upper())
        if img.mode != "LA" or mode == "RGB":
            img = img.convert("RGBA")
        return (img.convert("LA") if mode == "L" and img.mode != "LA" else img), 255.0, True
    try:
        return img.convert(mode), 255.0, False
    except ValueError:  # e.g. LAB converts to RGB only
        return img.convert("RGB").convert(mode), 255.0, False


def _decode(Image, ImageOps, img, size, mode, background, where, say):
    """The ``(1, C, H, W)`` float64 array of an opened image (see :func:`load_image`)."""
    if getattr(img, "is_animated", False):
        say(f"load_image: {where} is animated; reading its first frame")
    orientation = img.getexif().get(_ORIENTATION, 1)
    height, width = (img.width, img.height) if orientation in _TRANSPOSED else (img.height, img.width)
    if size is not None and img.format == "JPEG":
        # Decode at 1/2, 1/4 or 1/8 scale (libjpeg's DCT scaling) while staying
        # at least as large as the output: a 24 MP photo never exists in memory.
        want = (size[0], size[1]) if orientation in _TRANSPOSED else (size[1], size[0])
        img.draft(None, want)
    img.load()
    if orientation != 1:
        img = ImageOps.exif_transpose(img)
        say(f"load_image: {where} turned upright (EXIF orientation {orientation})")
    img, white, alpha = _working(img, mode, where)
    if size is not None and (height, width) != size:
        say(f"load_image: resized {where} from {height}x{width} to {size[0]}x{size[1]} (height x width, bilinear)")
    if size is not None and (img.height, img.width) != size:
        # Pillow's resize premultiplies alpha, so transparent pixels' hidden colours do not bleed.
        img = img.resize((size[1], size[0]), resample=Image.BILINEAR)
    pixels = np.asarray(img)
    pixels = pixels[:, :, None] if pixels.ndim == 2 else pixels  # (H, W, bands)
    color = np.moveaxis(pixels[:, :, :-1] if alpha else pixels, -1, 0)  # (1 or 3, H, W)
    out = np.empty((1, 3 if mode == "RGB" else 1) + color.shape[1:])
    np.divide(color, white, out=out[0])  # a grey image fills all three channels
    if alpha:
        a = pixels[:, :, -1] / 255.0  # (H, W)
        out[0] *= a
        out[0] += background * (1.0 - a)
    return out


def _image_arguments(size, mode, max_pixels, background):
    if mode not in ("RGB", "L"):
        raise ValueError(f"mode must be 'RGB' or 'L', got {mode!r}")
    if size is not None:
        if isinstance(size, (tuple, list)):
            if len(size) != 2:
                raise ValueError(f"size must be an int or a (height, width) pair, got {size!r}")
            size = (check_int(size[0], "size[0]", minimum=1), check_int(size[1], "size[1]", minimum=1))
        else:
            s = check_int(size, "size", minimum=1)
            size = (s, s)
    check_int(max_pixels, "max_pixels", minimum=1)
    background = check_float(background, "background", low=0.0, high=1.0)
    return size, background


@contextlib.contextmanager
def _reading(Image, path, max_pixels, where):
    """Open ``path`` (pixel limit checked first); any failure while it is read becomes one ValueError naming it."""
    try:
        with warnings.catch_warnings():
            # The pixel count is checked against max_pixels instead, with one ValueError.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with _open_image(Image, path, max_pixels, where) as img:
                yield img
    except _Refused:
        raise
    except Image.DecompressionBombError as err:
        raise ValueError(f"image {where} is too large for Pillow, refused before decoding: {err}") from err
    except PARSE_ERRORS as err:
        # Pillow's UnidentifiedImageError is an OSError.
        raise ValueError(f"path {where} is not a readable image: {err}") from err


def load_image(path, size=None, mode="RGB", verbose=True, max_pixels=MAX_IMAGE_PIXELS, background=1.0):
    """Read an image file into a ``(1, C, H, W)`` float64 array in [0, 1].

    Needs Pillow (``pip install pillow``), imported here so that the core
    of minicam depends on NumPy only.

    Parameters
    ----------
    path : str, os.PathLike or binary file object
    size : None, int or (int, int)
        Resize to ``size x size`` or to ``(height, width)`` with Pillow's
        bilinear filter (which widens its support to antialias when
        shrinking). The aspect ratio is not kept; nothing is cropped.
        ``None`` keeps the file's size. The image is resized by Pillow in its
        own 8-bit (or float32) pixels, before the float64 array is made, and a
        JPEG is decoded at 1/2, 1/4 or 1/8 scale when that stays at least
        ``size``: memory follows the output, not the photo.
    mode : {"RGB", "L"}
        Three colour channels or one grey channel (e.g. ``"L"`` for
        ``digits-gap``); a grey file read as ``"RGB"`` has three equal channels.
    verbose : bool, default True
        Print a line when the image is resized, turned upright or animated.
    max_pixels : int, default :data:`MAX_IMAGE_PIXELS`
        Larger images (width x height) are refused from their header, before
        decoding. Pillow's own limit (twice ``PIL.Image.MAX_IMAGE_PIXELS``)
        still applies above it.
    background : float in [0, 1], default 1.0 (white)
        Grey level that transparent pixels are composited on.

    Returns
    -------
    ndarray, float64, shape (1, 3, H, W) for "RGB" or (1, 1, H, W) for "L"
        ``H, W`` are ``size``, or the file's size after its EXIF orientation.

    Raises
    ------
    ValueError
        Not an image Pillow can read, more than ``max_pixels`` pixels, or
        values outside the range of its mode (below); bad arguments.

    Notes
    -----
    Each Pillow mode maps to [0, 1] by its own range:

    - 8-bit modes (1, L, P, RGB, CMYK, YCbCr, LAB, HSV, ...) are converted by
      Pillow to ``mode`` and divided by 255.
    - I;16, I;16L, I;16B, I;16N (16-bit PNG, TIFF): divided by 65535.
    - I (32-bit integers): divided by the white of the depth the file declares
      (a TIFF's BitsPerSample: 2**bits - 1, 2**(bits - 1) - 1 if signed), else
      by 65535 (Pillow reads 16-bit PGM/PPM as I, scaled to 65535). A value
      outside [0, white] refuses the image.
    - F (32-bit float, e.g. a float TIFF): taken as already in [0, 1]; a
      value outside [0, 1], or NaN, refuses the image.
    - Transparency (LA, RGBA, PA, premultiplied La/RGBa, palette or colour-key
      transparency) is composited over ``background``:
      ``value * alpha + background * (1 - alpha)``, after resizing.

    The EXIF orientation is applied (``PIL.ImageOps.exif_transpose``), so a
    phone photo comes out upright. An animated image (GIF, APNG, WebP,
    multi-page TIFF) gives its first frame.
    """
    Image, ImageOps = _pillow()
    size, background = _image_arguments(size, mode, max_pixels, background)
    where = source_name(path)
    verbose = check_bool(verbose, "verbose")
    say = (lambda line: print(line, flush=True)) if verbose else (lambda line: None)
    with _reading(Image, path, max_pixels, where) as img:
        return _decode(Image, ImageOps, img, size, mode, background, where, say)


def image_size(path, max_pixels=MAX_IMAGE_PIXELS):
    """``(height, width)`` that :func:`load_image` gives with ``size=None``, read from the header.

    The EXIF orientation is applied (a portrait phone photo stored sideways
    reports its upright size). Decodes nothing for JPEG and TIFF; a PNG whose
    EXIF data follows its pixels is decoded to find it.

    Raises
    ------
    ValueError
        Not a readable image, or more than ``max_pixels`` pixels.
    """
    Image, _ = _pillow()
    check_int(max_pixels, "max_pixels", minimum=1)
    where = source_name(path)
    with _reading(Image, path, max_pixels, where) as img:
        transposed = img.getexif().get(_ORIENTATION, 1) in _TRANSPOSED
        return (img.width, img.height) if transposed else (img.height, img.width)
