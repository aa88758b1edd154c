"""A small, real Pascal VOC dataset made from photographs that ship inside scikit-image.

Objects (an astronaut as ``person``, a cat, a motorcycle, a horse silhouette) are cut out
of their photographs with GrabCut (the horse's mask is its silhouette), scaled, flipped
and pasted onto crops of scikit-image's texture photographs. Everything is written in the
official VOC layout, so mmdet's ``VOCDataset`` and mmseg's ``PascalVOCDataset`` read it as
they read the real thing: ``Annotations/*.xml`` (1-based inclusive boxes),
``JPEGImages/*.jpg``, ``ImageSets/{Main,Segmentation}/*.txt``, palette PNGs in
``SegmentationClass`` (255 on a band along object borders, as in VOC) and
``SegmentationObject``.
"""
import functools
import os
import os.path as osp
from typing import Dict, List, Sequence, Tuple
from xml.etree import ElementTree as ET

import cv2
import numpy as np
from PIL import Image

__all__ = ['VOC_CLASSES', 'voc_palette', 'write_voc_sample', 'make_demo_voc']

VOC_CLASSES = ('aeroplane', 'bicycle', 'bird', 'boat', 'bottle', 'bus', 'car', 'cat', 'chair',
               'cow', 'diningtable', 'dog', 'horse', 'motorbike', 'person', 'pottedplant',
               'sheep', 'sofa', 'train', 'tvmonitor')

# (file in skimage/data, crop y0, y1, x0, x1) of each object's photograph.
OBJECT_SOURCES = {
    'person': ('astronaut.png', (0, 512, 0, 370)),
    'cat': ('chelsea.png', (0, 300, 30, 451)),
    'motorbike': ('motorcycle_left.png', (80, 470, 70, 700)),
    'horse': ('horse.png', (0, 328, 0, 400)),
}
BACKGROUNDS = ('grass.png', 'gravel.png', 'brick.png', 'hubble_deep_field.jpg', 'ihc.png',
               'coffee.png', 'rocket.jpg', 'moon.png', 'retina.jpg')


def voc_palette() -> List[int]:
    """The 256-colour palette of VOC's segmentation PNGs (the devkit's ``labelcolormap``)."""
    palette = []
    for i in range(256):
        r = g = b = 0
        c = i
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        palette += [r, g, b]
    return palette


def _skimage_image(name: str) -> np.ndarray:
    import skimage
    path = osp.join(osp.dirname(skimage.__file__), 'data', name)
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FileNotFoundError(f'scikit-image sample image {path} could not be read')
    return image


@functools.lru_cache(maxsize=None)
def _object_cutout(name: str) -> Tuple[np.ndarray, np.ndarray]:
    """``(bgr image, bool mask)`` of one object, cropped to its photograph's region."""
    file, (y0, y1, x0, x1) = OBJECT_SOURCES[name]
    image = _skimage_image(file)[y0:y1, x0:x1]
    if name == 'horse':
        # A black silhouette: its shape is the mask; give it a coat from a real texture.
        mask = image[..., :3].mean(-1) < 128
        coat = cv2.resize(_skimage_image('gravel.png'), mask.shape[::-1])
        coat = coat.astype(np.float32)[..., None] / 255
        image = (np.array([40, 70, 120], np.float32) * (0.6 + 0.8 * coat)).clip(0, 255)
        return image.astype(np.uint8), mask
    image = np.ascontiguousarray(image[..., :3])
    gc = np.zeros(image.shape[:2], np.uint8)
    h, w = gc.shape
    cv2.setRNGSeed(0)
    cv2.grabCut(image, gc, (w // 30, h // 30, w - w // 15, h - h // 15),
                np.zeros((1, 65)), np.zeros((1, 65)), 5, cv2.GC_INIT_WITH_RECT)
    mask = (gc == cv2.GC_FGD) | (gc == cv2.GC_PR_FGD)
    return image, mask


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    image = _skimage_image(BACKGROUNDS[rng.integers(len(BACKGROUNDS))])
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    image = image[..., :3]
    side = int(min(image.shape[:2]) * rng.uniform(0.5, 1.0))
    y = rng.integers(image.shape[0] - side + 1)
    x = rng.integers(image.shape[1] - side + 1)
    return cv2.resize(image[y:y + side, x:x + side], (width, height))


def _iou(a: Sequence[int], b: Sequence[int]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / area


def compose_image(rng: np.random.Generator, height: int, width: int, max_objects: int = 2):
    """One image with 1..max_objects pasted objects.

    Returns ``(bgr image, objects, class map, instance map)`` where ``objects`` holds
    ``(class name, (x0, y0, x1, y1))`` with exclusive 0-based ends.
    """
    image = _background(rng, height, width)
    class_map = np.zeros((height, width), np.uint8)
    instance_map = np.zeros((height, width), np.uint8)
    objects = []
    names = list(OBJECT_SOURCES)
    wanted = rng.integers(1, max_objects + 1)
    for _ in range(100):
        if len(objects) == wanted:
            break
        name = names[rng.integers(len(names))]
        cut, mask = _object_cutout(name)
        scale = rng.uniform(0.4, 0.8) * min(height / cut.shape[0], width / cut.shape[1])
        h, w = max(2, int(cut.shape[0] * scale)), max(2, int(cut.shape[1] * scale))
        y, x = rng.integers(height - h + 1), rng.integers(width - w + 1)
        ys, xs = np.nonzero(cv2.resize(mask.astype(np.uint8), (w, h)))
        box = (x + xs.min(), y + ys.min(), x + xs.max() + 1, y + ys.max() + 1)
        if any(_iou(box, other) > 0.2 for _, other in objects):
            continue
        cut = cv2.resize(cut, (w, h))
        m = cv2.resize(mask.astype(np.uint8), (w, h)).astype(bool)
        if rng.random() < 0.5:
            cut, m = cut[:, ::-1], m[:, ::-1]
            box = (x + w - 1 - xs.max(), box[1], x + w - xs.min(), box[3])
        gain = rng.uniform(0.8, 1.2)
        region = image[y:y + h, x:x + w]
        region[m] = (cut[m].astype(np.float32) * gain).clip(0, 255).astype(np.uint8)
        class_map[y:y + h, x:x + w][m] = VOC_CLASSES.index(name) + 1
        objects.append((name, tuple(int(v) for v in box)))
        instance_map[y:y + h, x:x + w][m] = len(objects)
    # VOC marks a band along object borders as 255 ("void"), ignored by the metrics.
    edges = cv2.morphologyEx(class_map, cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    class_map[edges] = 255
    instance_map[edges] = 255
    return image, objects, class_map, instance_map


def write_voc_sample(year_dir: str, image_id: str, image: np.ndarray,
                     objects: Sequence[Tuple[str, Tuple[int, int, int, int]]],
                     class_map: np.ndarray = None, instance_map: np.ndarray = None) -> None:
    """Writes one image and its annotations into a ``VOCdevkit/VOC20xx`` folder."""
    for sub in ('Annotations', 'JPEGImages', 'SegmentationClass', 'SegmentationObject'):
        os.makedirs(osp.join(year_dir, sub), exist_ok=True)
    height, width = image.shape[:2]
    cv2.imwrite(osp.join(year_dir, 'JPEGImages', f'{image_id}.jpg'), image)
    root = ET.Element('annotation')
    ET.SubElement(root, 'folder').text = osp.basename(year_dir)
    ET.SubElement(root, 'filename').text = f'{image_id}.jpg'
    size = ET.SubElement(root, 'size')
    for key, value in (('width', width), ('height', height), ('depth', 3)):
        ET.SubElement(size, key).text = str(value)
    ET.SubElement(root, 'segmented').text = str(int(class_map is not None))
    for name, (x0, y0, x1, y1) in objects:
        obj = ET.SubElement(root, 'object')
        ET.SubElement(obj, 'name').text = name
        ET.SubElement(obj, 'pose').text = 'Unspecified'
        ET.SubElement(obj, 'truncated').text = '0'
        ET.SubElement(obj, 'difficult').text = '0'
        box = ET.SubElement(obj, 'bndbox')
        # VOC boxes are 1-based and inclusive: pixels x0..x1-1 are xmin=x0+1, xmax=x1.
        for key, value in (('xmin', x0 + 1), ('ymin', y0 + 1), ('xmax', x1), ('ymax', y1)):
            ET.SubElement(box, key).text = str(value)
    ET.indent(root)
    ET.ElementTree(root).write(osp.join(year_dir, 'Annotations', f'{image_id}.xml'))
    for folder, label_map in (('SegmentationClass', class_map),
                              ('SegmentationObject', instance_map)):
        if label_map is not None:
            png = Image.fromarray(label_map, mode='P')
            png.putpalette(voc_palette())
            png.save(osp.join(year_dir, folder, f'{image_id}.png'))


def write_image_set(year_dir: str, kind: str, split: str, ids: Sequence[str]) -> None:
    folder = osp.join(year_dir, 'ImageSets', kind)
    os.makedirs(folder, exist_ok=True)
    with open(osp.join(folder, f'{split}.txt'), 'w') as f:
        f.writelines(f'{i}\n' for i in ids)


def make_demo_voc(out_dir: str, num_train: int = 160, num_test: int = 40,
                  size: Tuple[int, int] = (256, 320), seed: int = 0,
                  num_val: int = None) -> Dict[str, int]:
    """Writes ``out_dir/VOC2007`` (trainval + test) and ``out_dir/VOC2012`` (trainval + val).

    Half of the training images go to each year, as VOC 07+12 training expects. VOC2012's
    ``val`` (``num_val`` images, default ``num_test``) is held out for choosing settings:
    unlike real VOC's, the demo's ``trainval`` lists do not contain it. Each split draws
    from its own seeded stream, so its images do not depend on the other splits' sizes:
    a larger test set starts with the smaller one's images, and the training images are
    the same whatever the test and validation sizes. Segmentation lists: ``train`` (the
    year's trainval images), ``val``, ``test``. Returns the number of images per split.
    """
    height, width = size
    num_val = num_test if num_val is None else num_val
    splits = [('VOC2007', 'trainval', num_train - num_train // 2), ('VOC2007', 'test', num_test),
              ('VOC2012', 'trainval', num_train // 2), ('VOC2012', 'val', num_val)]
    counts = {}
    for stream, (year, split, number) in enumerate(splits):
        rng = np.random.default_rng([seed, stream])
        year_dir = osp.join(out_dir, year)
        prefix = '' if year == 'VOC2007' else '2012_'
        first = 1 if split == 'trainval' else 100001          # ids apart from trainval's
        ids = []
        for i in range(number):
            image_id = f'{prefix}{first + i:06d}'
            write_voc_sample(year_dir, image_id, *compose_image(rng, height, width))
            ids.append(image_id)
        write_image_set(year_dir, 'Main', split, ids)
        write_image_set(year_dir, 'Segmentation', {'trainval': 'train'}.get(split, split), ids)
        counts[f'{year}/{split}'] = number
    return counts
