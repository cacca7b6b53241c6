"""Fixtures of the image pipeline: small PNG/JPEG files and what PIL + torchvision make of them
(decode, Resize with PIL's antialiased bilinear, CenterCrop, ToTensor, Normalize)."""
import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from fixture import save


def image(outdir):
    rng = np.random.RandomState(5)
    # Smooth-ish content with some high frequencies, so resampling differences would show.
    yy, xx = np.mgrid[0:29, 0:45]
    base = np.stack([128 + 100 * np.sin(xx / 5.0), 128 + 100 * np.cos(yy / 4.0),
                     (xx * yy) % 256], axis=-1)
    rgb = np.clip(base + rng.randint(-30, 30, base.shape), 0, 255).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(f"{outdir}/image_rgb.png")
    grey = rng.randint(0, 256, (31, 20)).astype(np.uint8)
    Image.fromarray(grey, "L").save(f"{outdir}/image_grey.png")
    Image.fromarray(rgb, "RGB").save(f"{outdir}/image_rgb.jpg", quality=92)

    def load(name):
        return Image.open(f"{outdir}/{name}").convert("RGB")

    def pixels(img):
        return torch.from_numpy(np.asarray(img, dtype=np.float32).copy())

    norm = transforms.Compose([transforms.ToTensor(),
                               transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    out = {
        "rgb_pixels": pixels(load("image_rgb.png")),
        "grey_pixels": pixels(load("image_grey.png")),
        "jpg_pixels": pixels(load("image_rgb.jpg")),
        # exact-size resamples, down and up, both axes and one axis
        "rgb_resize_13x21": pixels(load("image_rgb.png").resize((13, 21), Image.BILINEAR)),
        "rgb_resize_90x40": pixels(load("image_rgb.png").resize((90, 40), Image.BILINEAR)),
        "rgb_resize_45x10": pixels(load("image_rgb.png").resize((45, 10), Image.BILINEAR)),
        # the eval transform of the reference at S = 16 and S = 21
        "rgb_eval16": transforms.Compose([transforms.Resize(16), transforms.CenterCrop(16),
                                          norm])(load("image_rgb.png")),
        "grey_eval21": transforms.Compose([transforms.Resize(21), transforms.CenterCrop(21),
                                           norm])(load("image_grey.png")),
    }
    save(f"{outdir}/ops_image.safetensors", out,
         {"torch": torch.__version__, "PIL": Image.__version__})


FAMILIES = {"image": image}
