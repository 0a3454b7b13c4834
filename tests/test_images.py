"""load_image: every Pillow mode to [0, 1] by its own range, alpha, EXIF, frames, bombs, memory."""

import io as stdio
import struct
import subprocess
import sys
import textwrap
import warnings
import zlib

import numpy as np
import pytest

from minicam import images, io

Image = pytest.importorskip("PIL.Image")


def saved(tmp_path, img, fmt, name=None, **kwargs):
    path = tmp_path / (name or f"img.{fmt.lower()}")
    img.save(path, format=fmt, **kwargs)
    return path


def load(path, **kwargs):
    """load_image with warnings as errors (none may escape)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return io.load_image(path, verbose=False, **kwargs)


# ----------------------------------------------------------------------------
# Modes: each to [0, 1] by its own range
# ----------------------------------------------------------------------------


def test_bilevel_and_grey(tmp_path):
    bits = np.array([[0, 1, 1], [1, 0, 0]], dtype=bool)
    path = saved(tmp_path, Image.fromarray(bits), "PNG")
    assert Image.open(path).mode == "1"
    np.testing.assert_array_equal(load(path, mode="L")[0, 0], bits * 1.0)
    rgb = load(path)
    assert rgb.shape == (1, 3, 2, 3)
    for c in range(3):  # a grey file read as RGB: three equal channels
        np.testing.assert_array_equal(rgb[0, c], bits * 1.0)

    grey = np.array([[0, 51, 255]], dtype=np.uint8)
    np.testing.assert_array_equal(load(saved(tmp_path, Image.fromarray(grey), "PNG"), mode="L")[0, 0], grey / 255.0)


@pytest.mark.parametrize("fmt, mode", [("PNG", "I;16"), ("TIFF", "I;16"), ("TIFF", "I;16B"), ("PPM", "I")])
def test_sixteen_bit_is_divided_by_65535(tmp_path, fmt, mode):
    # A 16-bit PNG came out 99.5% white: Pillow's conversion to 8 bits clipped
    # at 255 instead of scaling by the mode's range.
    values = np.array([[0, 1, 255, 256], [32768, 40000, 65534, 65535]], dtype=np.uint16)
    img = Image.fromarray(values)
    if mode == "I;16B":
        img = Image.frombytes("I;16B", img.size, values.astype(">u2").tobytes())
    path = saved(tmp_path, img, fmt)
    assert Image.open(path).mode == mode  # the mode under test (PGM 16-bit opens as I)
    x = load(path, mode="L")
    np.testing.assert_array_equal(x[0, 0], values / 65535.0)
    np.testing.assert_array_equal(load(path)[0, 2], values / 65535.0)


def test_sixteen_bit_gradient_is_not_white(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).astype(np.uint16).reshape(64, 64)
    x = load(saved(tmp_path, Image.fromarray(ramp), "PNG"), size=16)
    assert abs(x.mean() - 0.5) < 0.01 and (x >= 0.99).mean() < 0.05


def test_thirty_two_bit_integers_by_declared_depth(tmp_path):
    # A TIFF of mode I declares 32-bit signed samples: white is 2**31 - 1.
    values = np.array([[0, 2**20, 2**31 - 1]], dtype=np.int32)
    path = saved(tmp_path, Image.fromarray(values), "TIFF")
    assert Image.open(path).mode == "I" and Image.open(path).tag_v2[258] in (32, (32,))
    np.testing.assert_array_equal(load(path, mode="L")[0, 0], values / (2.0**31 - 1))
    negative = saved(tmp_path, Image.fromarray(np.array([[-5, 7]], dtype=np.int32)), "TIFF", name="neg.tif")
    with pytest.raises(ValueError, match=r"mode I, 32-bit\) has values in \[-5, 7\], outside \[0, 2147483647\]"):
        load(negative)


def test_float_image_is_taken_as_zero_to_one(tmp_path):
    # A float TIFF with values in [0, 1) came out all zeros (Pillow rounds F to 8-bit integers).
    values = np.array([[0.0, 0.25, 0.5], [0.75, 0.999, 1.0]], dtype=np.float32)
    path = saved(tmp_path, Image.fromarray(values), "TIFF")
    assert Image.open(path).mode == "F"
    np.testing.assert_array_equal(load(path, mode="L")[0, 0], values.astype(np.float64))
    for bad, words in (([[0.5, 1.5]], r"\[0.5, 1.5\]"), ([[-0.1, 0.5]], r"\[-0.1"), ([[np.nan, 0.5]], "and NaN")):
        path = saved(tmp_path, Image.fromarray(np.array(bad, dtype=np.float32)), "TIFF", name="bad.tif")
        with pytest.raises(ValueError, match=words):
            load(path)


def test_palette(tmp_path):
    img = Image.new("P", (3, 1))
    img.putpalette([255, 0, 0, 0, 128, 255, 10, 20, 30] + [0] * (256 * 3 - 9))
    img.putdata([0, 1, 2])
    expected = np.array([[255, 0, 0], [0, 128, 255], [10, 20, 30]]).T[:, None, :] / 255.0  # (3, 1, 3)
    np.testing.assert_array_equal(load(saved(tmp_path, img, "PNG"))[0], expected)
    img.info["transparency"] = 1  # palette entry 1 is transparent
    np.testing.assert_array_equal(load(saved(tmp_path, img, "PNG", name="t.png"))[0, :, 0, 1], [1.0, 1.0, 1.0])
    np.testing.assert_array_equal(load(saved(tmp_path, img, "PNG", name="t.png"), background=0.0)[0, :, 0, 1], 0.0)


def test_colour_spaces_convert_by_pillow(tmp_path):
    cmyk = Image.new("CMYK", (3, 1))
    cmyk.putdata([(0, 0, 0, 0), (0, 0, 0, 255), (255, 0, 0, 0)])  # white, black, cyan
    np.testing.assert_array_equal(load(saved(tmp_path, cmyk, "TIFF"))[0, :, 0, :].T, [[1, 1, 1], [0, 0, 0], [0, 1, 1]])
    ycc = Image.new("YCbCr", (2, 1))
    ycc.putdata([(128, 128, 128), (255, 128, 128)])  # neutral chroma: R = G = B = Y
    np.testing.assert_array_equal(load(saved(tmp_path, ycc, "TIFF", name="y.tif"))[0, :, 0, :].T,
                                  [[128 / 255] * 3, [1, 1, 1]])
    lab = Image.new("LAB", (2, 1), (255, 0, 0))  # Pillow converts LAB to RGB only: L goes through RGB
    path = saved(tmp_path, lab, "TIFF", name="lab.tif")
    np.testing.assert_array_equal(load(path)[0], np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1) / 255.0)
    grey = np.asarray(Image.open(path).convert("RGB").convert("L")) / 255.0
    np.testing.assert_array_equal(load(path, mode="L")[0, 0], grey)


# ----------------------------------------------------------------------------
# Transparency: composited over `background`, after a premultiplied resize
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("background", [1.0, 0.0, 0.25])
def test_alpha_is_composited_on_the_background(tmp_path, background):
    rgba = np.array([[[255, 0, 0, 0], [0, 0, 255, 255], [200, 100, 50, 51]]], dtype=np.uint8)  # (1, 3, 4)
    x = load(saved(tmp_path, Image.fromarray(rgba), "PNG"), background=background)[0]  # (3, 1, 3)
    a = rgba[..., 3] / 255.0
    expected = (rgba[..., :3] / 255.0) * a[..., None] + background * (1 - a[..., None])
    np.testing.assert_allclose(x, expected.transpose(2, 0, 1), rtol=0, atol=1e-15)
    assert np.all(x[:, 0, 0] == background)  # the hidden red of a transparent pixel never shows

    la = np.array([[[200, 0], [200, 255], [200, 51]]], dtype=np.uint8)
    g = load(saved(tmp_path, Image.fromarray(la, "LA"), "PNG", name="la.png"), mode="L", background=background)
    a = la[..., 1] / 255.0
    np.testing.assert_allclose(g[0, 0], 200 / 255 * a + background * (1 - a), rtol=0, atol=1e-15)
    # RGBA read as L: Pillow's luma, then the same compositing.
    g = load(saved(tmp_path, Image.fromarray(rgba), "PNG"), mode="L", background=background)
    assert g[0, 0, 0, 0] == background and g[0, 0, 0, 1] == 29 / 255  # 0.114 * 255 rounds to 29


def test_palette_alpha_and_premultiplied_modes(tmp_path):
    pa = Image.new("PA", (2, 1))
    pa.putpalette([0, 255, 0] * 256)
    pa.putdata([(0, 255), (0, 0)])
    x = load(saved(tmp_path, pa, "TIFF"), background=0.0)
    np.testing.assert_array_equal(x[0, :, 0, :].T, [[0, 1, 0], [0, 0, 0]])
    # La and RGBa exist only in memory; their conversion is the same rule.
    for mode, value in (("La", (100, 128)), ("RGBa", (100, 100, 100, 128))):
        img, white, alpha = images._working(Image.new(mode, (1, 1), value), "L", "<test>")
        assert alpha and white == 255.0 and img.mode == "LA" and img.getpixel((0, 0)) == (199, 128)


def test_transparent_pixels_do_not_bleed_when_resizing(tmp_path):
    # Opaque blue next to transparent red, averaged to one pixel: half-transparent
    # blue on white. Pillow's resize premultiplies alpha, so no red comes in.
    rgba = np.array([[[0, 0, 255, 255], [255, 0, 0, 0]]], dtype=np.uint8)
    x = load(saved(tmp_path, Image.fromarray(rgba), "PNG"), size=(1, 1))[0, :, 0, 0]
    assert x[0] == x[1] and x[2] == 1.0 and 0.45 < x[0] < 0.55


# ----------------------------------------------------------------------------
# EXIF orientation, animation
# ----------------------------------------------------------------------------

UPRIGHT = {  # EXIF orientation -> the upright image of the stored array a (the EXIF specification's table)
    1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1, :],
    5: lambda a: a.T, 6: lambda a: np.rot90(a, k=-1), 7: lambda a: a[::-1, ::-1].T, 8: lambda a: np.rot90(a, k=1),
}


@pytest.mark.parametrize("orientation", sorted(UPRIGHT))
def test_exif_orientation_is_applied(tmp_path, orientation, capsys):
    stored = np.arange(6, dtype=np.uint8).reshape(2, 3) * 40
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = saved(tmp_path, Image.fromarray(stored), "PNG", exif=exif)
    upright = UPRIGHT[orientation](stored)
    x = io.load_image(path, mode="L")
    np.testing.assert_array_equal(x[0, 0], upright / 255.0)
    assert io.image_size(path) == upright.shape
    assert ("EXIF orientation" in capsys.readouterr().out) == (orientation != 1)


def test_exif_orientation_with_a_reduced_jpeg(tmp_path):
    # Orientation 6 (stored turned 90 degrees anticlockwise): the stored left half comes out on top,
    # also when the JPEG is decoded at a reduced scale for a small output.
    stored = np.zeros((800, 1600), dtype=np.uint8)
    stored[:, 800:] = 255
    exif = Image.Exif()
    exif[0x0112] = 6
    path = saved(tmp_path, Image.fromarray(stored), "JPEG", exif=exif, quality=95)
    assert io.image_size(path) == (1600, 800)
    x = load(path, size=(100, 50), mode="L")[0, 0]
    assert x.shape == (100, 50)
    assert x[:45].max() < 0.05 and x[55:].min() > 0.95


def test_animated_image_gives_its_first_frame(tmp_path, capsys):
    frames = [Image.new("RGB", (4, 4), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    x = io.load_image(path)
    np.testing.assert_array_equal(x[0, :, 0, 0], [1.0, 0.0, 0.0])
    assert "animated; reading its first frame" in capsys.readouterr().out
    io.load_image(path, verbose=False)
    assert capsys.readouterr().out == ""


# ----------------------------------------------------------------------------
# Decompression bombs: refused from the header, before decoding
# ----------------------------------------------------------------------------


def png_header_only(path, width, height):
    """A PNG whose header declares ``width x height`` grey pixels, with (almost) no pixel data."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("width, height", [
    (9000, 8000),  # 72 M pixels: above MAX_IMAGE_PIXELS, below Pillow's warning (89 M)
    (10_000, 10_000),  # above Pillow's warning: no DecompressionBombWarning escapes
    (20_000, 20_000),  # above Pillow's error (179 M): still one ValueError
])
def test_decompression_bomb_is_refused_before_decoding(tmp_path, width, height):
    path = png_header_only(tmp_path / "bomb.png", width, height)
    with pytest.raises(ValueError, match="refused before decoding") as info:
        load(path)
    assert str(path) in str(info.value) and str(width * height) in str(info.value)
    with pytest.raises(ValueError, match="refused before decoding"):
        io.image_size(path)


def test_max_pixels_is_a_parameter(tmp_path):
    path = saved(tmp_path, Image.new("L", (100, 100), 7), "PNG")
    with pytest.raises(ValueError, match=r"100 x 100 = 10000 pixels, more than max_pixels = 9999"):
        load(path, max_pixels=9999)
    assert load(path, max_pixels=10_000).shape == (1, 3, 100, 100)
    # A header-only file under the limit is decoded -- and fails as truncated, which
    # shows that the files above were refused without decoding.
    with pytest.raises(ValueError, match="not a readable image"):
        load(png_header_only(tmp_path / "small.png", 100, 100))


def test_bad_new_arguments(tmp_path):
    path = saved(tmp_path, Image.new("L", (4, 4)), "PNG")
    with pytest.raises(ValueError, match="background"):
        io.load_image(path, background=2.0)
    with pytest.raises(TypeError, match="background"):
        io.load_image(path, background="white")
    with pytest.raises(ValueError, match="max_pixels"):
        io.load_image(path, max_pixels=0)
    with pytest.raises(ValueError, match="not a readable image"):
        io.image_size(tmp_path / "missing.png")


# ----------------------------------------------------------------------------
# Ordinary files, file objects, memory
# ----------------------------------------------------------------------------


def test_file_object_is_left_open(tmp_path):
    pixels = np.arange(12, dtype=np.uint8).reshape(2, 2, 3) * 20
    path = saved(tmp_path, Image.fromarray(pixels), "PNG")
    with open(path, "rb") as f:
        x = io.load_image(f)
        assert not f.closed
    np.testing.assert_array_equal(x[0], pixels.transpose(2, 0, 1) / 255.0)
    buf = stdio.BytesIO(path.read_bytes())
    np.testing.assert_array_equal(io.load_image(buf), x)
    assert io.image_size(stdio.BytesIO(path.read_bytes())) == (2, 2)


def test_small_jpeg_is_decoded_whole(tmp_path):
    # No reduced decoding when the output is more than half the file's size:
    # the result is Pillow's full decode, resized.
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    path = saved(tmp_path, Image.fromarray(pixels), "JPEG")
    with Image.open(path) as img:
        expected = np.asarray(img.convert("RGB").resize((40, 30), Image.BILINEAR)).transpose(2, 0, 1) / 255.0
    np.testing.assert_array_equal(load(path, size=(30, 40))[0], expected)


def test_reduced_jpeg_decoding_is_close_to_a_full_decode(tmp_path):
    # libjpeg's 1/8-scale decoding averages 8x8 blocks; then the same bilinear resize.
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:1200, 0:1600]
    pixels = np.stack([xx / 1600, yy / 1200, (np.sin(xx / 90) + 1) / 2], -1) * 200 + rng.integers(0, 40, (1200, 1600, 3))
    path = saved(tmp_path, Image.fromarray(pixels.astype(np.uint8)), "JPEG", quality=90)
    with Image.open(path) as img:
        full = np.asarray(img.resize((40, 30), Image.BILINEAR)).transpose(2, 0, 1) / 255.0
    x = load(path, size=(30, 40))[0]
    assert np.abs(x - full).mean() < 0.01 and np.abs(x - full).max() < 0.05


MEASURE = textwrap.dedent("""
    import resource, sys, time
    from minicam import io
    import PIL.Image
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    x = io.load_image(sys.argv[1], size=(32, 32), verbose=False)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert x.shape == (1, 3, 32, 32)
    print((after - before) / 1024, seconds)  # MiB (Linux reports KiB), s
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss is in KiB on Linux only")
def test_large_jpeg_is_read_in_little_memory(tmp_path):
    # A 24-megapixel JPEG read for a 32x32 model input: decoding it whole takes
    # 72 MB in 8-bit RGB (it took 1.2 GB through float64 before); decoded at
    # 1/8 scale it takes ~1 MB. The peak RSS of a fresh process is measured.
    ramp = Image.linear_gradient("L").resize((6000, 4000))
    path = saved(tmp_path, Image.merge("RGB", (ramp, ramp.transpose(Image.Transpose.FLIP_LEFT_RIGHT), ramp)), "JPEG")
    out = subprocess.run([sys.executable, "-c", MEASURE, str(path)], capture_output=True, text=True, check=True)
    mib, seconds = map(float, out.stdout.split())
    print(f"24 MP JPEG to 32x32: peak RSS +{mib:.1f} MiB, {seconds:.2f} s")
    assert mib < 40, f"reading a 24 MP JPEG for a 32x32 output raised the peak RSS by {mib:.0f} MiB"
