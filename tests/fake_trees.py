"""Tiny fake copies of every dataset layout, for tests (``import fake_trees``).

Every anomalous image has a bright (255) rectangle on a darker background (< 200) and its mask marks exactly
that rectangle, at a position that differs between the anomalies of one category, so a test can check that
each mask belongs to its image. ``make_<name>(root, layout=...)`` writes one dataset into ``root`` and returns
``root``; ``make_fake_data_root(root)`` writes every dataset in its default layout into ``root/<name>``.
"""
from __future__ import annotations

import json
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

SIZE = 32
BOX = 8
# top-left corners of non-overlapping boxes in a 32-px image; anomaly i of a category uses corner i % 5
_CORNERS = ((2, 2), (2, 22), (22, 2), (22, 22), (12, 12))


def box(index: int, size: int = SIZE) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the defect drawn for anomaly number ``index``."""
    top, left = _CORNERS[index % len(_CORNERS)]
    scale = size / SIZE
    return int(top * scale), int(left * scale), BOX, BOX


def pixels(key: str, shape: tuple[int, int], defect: tuple[int, int, int, int] | None = None,
           channels: int = 3) -> np.ndarray:
    """A uint8 texture (values 40..160) seeded by ``key``, with ``defect`` painted 255."""
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    array = rng.integers(40, 160, size=(*shape, channels), dtype=np.uint8)
    if defect is not None:
        top, left, height, width = defect
        array[top : top + height, left : left + width] = 255
    return array[..., 0] if channels == 1 else array


def mask_pixels(shape: tuple[int, int], defect: tuple[int, int, int, int], value: int = 255) -> np.ndarray:
    mask = np.zeros(shape, dtype=np.uint8)
    top, left, height, width = defect
    mask[top : top + height, left : left + width] = value
    return mask


def save(path: Path, array: np.ndarray, bits16: bool = False) -> Path:
    """Write ``array`` to ``path`` in the format its extension names (``.JPG``, ``.bmp``, ``.tif``...)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if bits16:
        Image.fromarray(array.astype(np.uint16) * 257).save(path)
    else:
        Image.fromarray(array).save(path, quality=95) if path.suffix.lower() in (".jpg", ".jpeg") else \
            Image.fromarray(array).save(path)
    return path


def write_pair(image: Path, mask: Path | None, key: str, index: int, *, size: int = SIZE, channels: int = 3,
               mask_value: int = 255) -> None:
    """An anomalous image with its defect box, and the mask of that box (``mask`` None: no mask file)."""
    defect = box(index, size)
    save(image, pixels(key, (size, size), defect, channels))
    if mask is not None:
        save(mask, mask_pixels((size, size), defect, mask_value))


def write_normal(image: Path, key: str, *, size: int = SIZE, channels: int = 3, bits16: bool = False) -> None:
    save(image, pixels(key, (size, size), None, channels), bits16=bits16)


def mvtec_category(cat_dir: Path, *, n_train: int = 1, n_good: int = 2, defects: tuple[str, ...] = ("crack", "cut"),
                   n_bad: int = 1, normal: str = "good", ext: str = ".png", mask_ext: str = ".png",
                   mask_suffix: str = "_mask", digits: int = 3, channels: int = 3, masks: bool = True) -> None:
    """One category of an MVTec-like tree: ``train/<normal>``, ``test/<normal>``, ``test/<defect>``,
    ``ground_truth/<defect>/<stem><mask_suffix><mask_ext>``."""
    name = "{:0%dd}" % digits
    for i in range(n_train):
        write_normal(cat_dir / "train" / normal / f"{name.format(i)}{ext}", f"{cat_dir}/tr{i}", channels=channels)
    for i in range(n_good):
        write_normal(cat_dir / "test" / normal / f"{name.format(i)}{ext}", f"{cat_dir}/g{i}", channels=channels)
    index = 0
    for defect in defects:
        for i in range(n_bad):
            stem = name.format(i)
            mask = cat_dir / "ground_truth" / defect / f"{stem}{mask_suffix}{mask_ext}" if masks else None
            write_pair(cat_dir / "test" / defect / f"{stem}{ext}", mask, f"{cat_dir}/{defect}{i}", index,
                       channels=channels)
            index += 1


# -- industrial ------------------------------------------------------------------------------------
def make_mvtec(root: Path, categories: tuple[str, ...] = ("bottle", "grid"), **kw) -> Path:
    """MVTec AD; ``grid`` is written as 8-bit grayscale, as in the real dataset."""
    for cat in categories:
        mvtec_category(root / cat, channels=1 if cat in ("grid", "screw", "zipper") else 3, **kw)
    (root / "license.txt").write_text("fake\n")
    return root


def make_mpdd(root: Path, categories: tuple[str, ...] = ("bracket_black", "tubes"), wrapped: bool = False) -> Path:
    """MPDD; ``wrapped=True`` nests it in ``MPDD/`` as the public mirror zip does."""
    base = root / "MPDD" if wrapped else root
    for cat in categories:
        mvtec_category(base / cat, defects=("anomalous",) if cat == "tubes" else ("hole", "scratches"),
                       n_bad=2 if cat == "tubes" else 1)
    return root


def make_dtd(root: Path, categories: tuple[str, ...] = ("Woven_001", "Blotchy_099")) -> Path:
    for cat in categories:
        mvtec_category(root / cat, defects=("bad",), n_bad=2)
    return root


def make_btad(root: Path) -> Path:
    """BTAD with its mixed extensions: 01 bmp images/png masks, 02 png/png, 03 bmp/bmp; ``ok``/``ko``."""
    base = root / "BTech_Dataset_transformed"
    for cat, ext, mask_ext in (("01", ".bmp", ".png"), ("02", ".png", ".png"), ("03", ".bmp", ".bmp")):
        mvtec_category(base / cat, normal="ok", defects=("ko",), n_bad=2, ext=ext, mask_ext=mask_ext,
                       mask_suffix="", digits=4)
    return root


def make_visa(root: Path, layout: str = "official", categories: tuple[str, ...] = ("candle", "capsules")) -> Path:
    """VisA: ``official`` (split_csv/1cls.csv, ``.JPG``, class-index masks) or ``prepared`` (VisA_pytorch/1cls)."""
    if layout == "prepared":
        for cat in categories:
            mvtec_category(root / "VisA_pytorch" / "1cls" / cat, defects=("bad",), n_bad=2, mask_suffix="")
        return root
    rows = ["object,split,label,image,mask"]
    for cat in categories:
        digits = 4 if cat == "candle" else 3
        for i, split in enumerate(("train", "test", "test")):
            rel = f"{cat}/Data/Images/Normal/{i:0{digits}d}.JPG"
            write_normal(root / rel, f"visa/{cat}/n{i}")
            rows.append(f"{cat},{split},normal,{rel},")
        for i in range(2):
            rel, mrel = f"{cat}/Data/Images/Anomaly/{i:03d}.JPG", f"{cat}/Data/Masks/Anomaly/{i:03d}.png"
            write_pair(root / rel, root / mrel, f"visa/{cat}/a{i}", i, mask_value=i + 1)
            rows.append(f"{cat},test,anomaly,{rel},{mrel}")
        (root / cat / "image_anno.csv").write_text("image,label,mask\n")
    (root / "split_csv").mkdir(parents=True, exist_ok=True)
    (root / "split_csv" / "1cls.csv").write_text("\n".join(rows) + "\n")
    return root


def make_sdd(root: Path, layout: str = "official", items: int = 4, parts: int = 2) -> Path:
    """KolektorSDD: ``official`` (kosNN/PartN.jpg, 32x96 grayscale, PartN_label.bmp; the first strip of every
    odd part is defective), ``adaclip`` (strip PNGs in SDD_anomaly_detection/SDD) or ``anomalyclip``
    (strip PNGs in 'electrical commutators', with a space)."""
    if layout == "official":
        n = 0
        for k in range(1, items + 1):
            for p in range(parts):
                folder = root / f"kos{k:02d}"
                defect = (4, 4 + 8 * (n % 3), BOX, BOX) if n % 2 else None
                save(folder / f"Part{p}.jpg", pixels(f"sdd/{k}/{p}", (96, SIZE), defect, 1))
                truth = mask_pixels((96, SIZE), defect) if defect else np.zeros((96, SIZE), np.uint8)
                save(folder / f"Part{p}_label.bmp", truth)
                n += 1
        return root
    cat = root / "SDD_anomaly_detection" / "SDD" if layout == "adaclip" else root / "SDD" / "electrical commutators"
    mvtec_category(cat, n_train=1 if layout == "adaclip" else 0, defects=("defect",), n_bad=2, channels=1)
    return root


def make_dagm(root: Path, layout: str = "kaggle", classes: tuple[str, ...] = ("Class1", "Class2")) -> Path:
    """DAGM: ``kaggle`` (ClassK/{Train,Test}/NNNN.PNG, Label/Labels.txt with a BOM, Label/NNNN_label.PNG; Train
    also holds one defective image) or ``adaclip`` (DAGM_anomaly_detection, masks NNNN_label.PNG)."""
    if layout == "adaclip":
        for cat in classes:
            mvtec_category(root / "DAGM_anomaly_detection" / cat, defects=("defect",), n_bad=2, ext=".PNG",
                           mask_ext=".PNG", mask_suffix="_label", digits=4, channels=1)
        return root
    for c, cat in enumerate(classes):
        for phase, start, flags in (("Test", 1, (0, 0, 1, 1)), ("Train", 11, (0, 1))):
            folder = root / cat / phase
            lines = [str(c + 1)]
            for j, flag in enumerate(flags):
                stem = f"{start + j:04d}"
                if flag:
                    write_pair(folder / f"{stem}.PNG", folder / "Label" / f"{stem}_label.PNG", f"{cat}{phase}{j}",
                               j, channels=1)
                else:
                    write_normal(folder / f"{stem}.PNG", f"{cat}{phase}{j}", channels=1)
                lines.append(f"{j + 1}\t{flag}\t{stem}.PNG\t0\t{stem + '_label.PNG' if flag else '0'}")
            (folder / "Label").mkdir(parents=True, exist_ok=True)
            (folder / "Label" / "Labels.txt").write_text("\n".join(lines) + "\n", encoding="utf-8-sig")
    return root


# -- medical ---------------------------------------------------------------------------------------
def _anomalies(image_dir: Path, mask_dir: Path, stems: list[str], ext: str, mask_name: str, key: str,
               mask_ext: str = ".png") -> None:
    for i, stem in enumerate(stems):
        write_pair(image_dir / f"{stem}{ext}", mask_dir / f"{mask_name.format(stem)}{mask_ext}", f"{key}{i}", i)


def make_isic(root: Path, layout: str = "official", n: int = 3) -> Path:
    """ISIC 2016: ``official`` (Test_Data + Test_GroundTruth/*_Segmentation.png), ``anomalyclip``
    (skin/test/<folder>/ + skin/ISBI2016_ISIC_Part1_Test_GroundTruth/) or ``adaclip`` (isic/{test,ground_truth})."""
    stems = [f"ISIC_{9000000 + 7 * i:07d}" for i in range(n)]
    if layout == "adaclip":
        mvtec_category(root / "isic", n_train=0, n_good=0, defects=("melanoma",), n_bad=n)
    elif layout == "anomalyclip":
        _anomalies(root / "skin" / "test" / "defect", root / "skin" / "ISBI2016_ISIC_Part1_Test_GroundTruth", stems,
                   ".jpg", "{}_Segmentation", "isic")
    else:
        (root / "ISBI2016_ISIC_Part1_Test_Data").mkdir(parents=True, exist_ok=True)
        (root / "ISBI2016_ISIC_Part1_Test_Data" / "ATTRIBUTION.txt").write_text("fake\n")
        _anomalies(root / "ISBI2016_ISIC_Part1_Test_Data", root / "ISBI2016_ISIC_Part1_Test_GroundTruth", stems,
                   ".jpg", "{}_Segmentation", "isic")
    return root


def make_clinicdb(root: Path, layout: str = "official", n: int = 3) -> Path:
    """CVC-ClinicDB: ``official`` (Original/<n>.tif, 'Ground Truth'/<n>.tif), ``images_masks`` (PNG) or
    ``adaclip`` (CVC-ClinicDB/ClinicDB/{test,ground_truth})."""
    stems = [str(i + 1) for i in range(n)]
    if layout == "adaclip":
        mvtec_category(root / "CVC-ClinicDB" / "ClinicDB", n_train=0, n_good=0, defects=("polyp",), n_bad=n)
    elif layout == "images_masks":
        _anomalies(root / "images", root / "masks", stems, ".png", "{}", "clinic")
    else:
        _anomalies(root / "Original", root / "Ground Truth", stems, ".tif", "{}", "clinic", mask_ext=".tif")
    return root


def make_colondb(root: Path, layout: str = "official", n: int = 3) -> Path:
    """CVC-ColonDB: ``official`` (PraNet's TestDataset/CVC-ColonDB/{images,masks}) or ``adaclip``."""
    if layout == "adaclip":
        mvtec_category(root / "CVC-ColonDB" / "ColonDB", n_train=0, n_good=0, defects=("polyp",), n_bad=n)
    else:
        base = root / "TestDataset" / "CVC-ColonDB"
        _anomalies(base / "images", base / "masks", [str(i + 1) for i in range(n)], ".png", "{}", "colon")
    return root


def make_kvasir(root: Path, n: int = 3) -> Path:
    """Kvasir-SEG: Kvasir-SEG/{images,masks}/<25-char id>.jpg (JPEG masks) and kavsir_bboxes.json."""
    base = root / "Kvasir-SEG"
    stems = [f"cju0qkwl35piu0993l0dew{i:03d}" for i in range(n)]
    _anomalies(base / "images", base / "masks", stems, ".jpg", "{}", "kvasir", mask_ext=".jpg")
    (base / "kavsir_bboxes.json").write_text("{}\n")
    return root


def make_endo(root: Path, layout: str = "official", n: int = 3, mask_ext: str = ".png") -> Path:
    """EndoTect 2020: ``official`` (EndoTect_2020_Segmentation_Test_Dataset/{images,masks}, masks in
    ``mask_ext``: ``.jpg`` writes lossy JPEG masks) or ``adaclip``."""
    if layout == "adaclip":
        mvtec_category(root / "EndoTect" / "endo", n_train=0, n_good=0, defects=("polyp",), n_bad=n)
    else:
        base = root / "EndoTect_2020_Segmentation_Test_Dataset"
        _anomalies(base / "images", base / "masks", [f"endo{i}" for i in range(n)], ".jpg", "{}", "endo",
                   mask_ext=mask_ext)
    return root


def make_headct(root: Path, layout: str = "kaggle", n: int = 2) -> Path:
    """HeadCT: ``kaggle`` (labels.csv 'id, hemorrhage' + head_ct/head_ct/NNN.png, 16-bit grayscale; the first
    ``n`` ids are hemorrhages), ``anomalyclip`` (brain/test/{good,abnormal}) or ``adaclip`` (headct/...)."""
    if layout != "kaggle":
        cat = root / "brain" if layout == "anomalyclip" else root / "HeadCT_anomaly_detection" / "headct"
        mvtec_category(cat, n_train=0, defects=("abnormal" if layout == "anomalyclip" else "defect",), n_bad=n,
                       masks=False)
        return root
    rows = ["id, hemorrhage"]
    for i in range(2 * n):
        write_normal(root / "head_ct" / "head_ct" / f"{i:03d}.png", f"headct{i}", channels=1, bits16=True)
        rows.append(f"{i},{int(i < n)}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def make_brainmri(root: Path, layout: str = "kaggle", n: int = 2) -> Path:
    """BrainMRI: ``kaggle`` (brain_tumor_dataset/{yes,no} with irregular names, plus the top-level duplicate
    yes/ and no/ folders of the archive) or ``adaclip`` (brain_mri/{train,test})."""
    if layout == "adaclip":
        mvtec_category(root / "BrainMRI" / "brain_mri", n_train=0, defects=("defect",), n_bad=n, masks=False)
        return root
    names = {"no": ["1 no.jpeg", "No12.jpg", "19 no.JPG"][:n + 1], "yes": ["Y1.jpg", "Y100.JPG", "y7.png"][:n]}
    for base in (root / "brain_tumor_dataset", root):
        for kind, files in names.items():
            for i, name in enumerate(files):
                write_normal(base / kind / name, f"mri{kind}{i}", channels=1)
    return root


def make_br35h(root: Path, layout: str = "kaggle", n: int = 2) -> Path:
    """Br35H: ``kaggle`` (yes/y<i>.jpg, no/no<i>.jpg and the unlabelled pred/) or ``adaclip``."""
    if layout == "adaclip":
        mvtec_category(root / "Br35h_anomaly_detection" / "br35h", n_train=0, defects=("defect",), n_bad=n,
                       masks=False)
        return root
    for i in range(n):
        write_normal(root / "yes" / f"y{i}.jpg", f"br35y{i}")
        write_normal(root / "no" / f"no{i}.jpg", f"br35n{i}")
        write_normal(root / "pred" / f"pred{i}.jpg", f"br35p{i}")
    return root


# -- Real-IAD, meta.json -----------------------------------------------------------------------------
def make_realiad(root: Path, categories: tuple[str, ...] = ("audiojack", "pcb")) -> Path:
    """Real-IAD (realiad_1024): per category 2 OK samples x views C1, C2; 3 NG samples with C1 masks
    (``<stem>.png``, one as ``<stem>_mask.png``), plus one NG C1 view without a mask, which is dropped."""
    base = root / "realiad_1024"
    for cat in categories:
        for s in range(2):
            for view in ("C1", "C2"):
                name = f"{cat}_{s + 1:04d}_OK_{view}_2023102113220{s}.jpg"
                write_normal(base / cat / "OK" / f"S{s + 1:04d}" / name, f"{cat}ok{s}{view}")
        for s, code in enumerate(("AK", "HS", "AK", "QS")):
            folder = base / cat / "NG" / code / f"S{s + 10:04d}"
            stem = f"{cat}_{s + 10:04d}_NG_{code}_C1_2023102213220{s}"
            if s == 3:
                write_normal(folder / f"{stem}.jpg", f"{cat}ng{s}")
                continue
            write_pair(folder / f"{stem}.jpg", folder / (f"{stem}_mask.png" if s == 2 else f"{stem}.png"),
                       f"{cat}ng{s}", s)
            write_normal(folder / f"{stem.replace('_C1_', '_C2_')}.jpg", f"{cat}ng{s}c2")
    return root


def make_meta_json(root: Path, prefix: str = "/old/machine/data/mvtec", split_keys: tuple[str, str] = ("Train", "Test"),
                   absolute: bool = True) -> Path:
    """An MVTec tree (bottle, grid) plus a meta.json whose paths are absolute under ``prefix`` (another machine's
    root) and whose split keys are capitalised, as the DAGM and medical AnomalyCLIP scripts write them."""
    make_mvtec(root)
    info: dict = {split_keys[0]: {}, split_keys[1]: {}}
    for cat in ("bottle", "grid"):
        for split, key in (("train", split_keys[0]), ("test", split_keys[1])):
            records = []
            for image in sorted((root / cat / split).glob("*/*.png")):
                specie = image.parent.name
                rel = image.relative_to(root).as_posix()
                mask = f"{cat}/ground_truth/{specie}/{image.stem}_mask.png" if specie != "good" else ""
                join = (lambda p: f"{prefix}/{p}" if p else "") if absolute else (lambda p: p)
                records.append({"img_path": join(rel), "mask_path": join(mask), "cls_name": cat,
                                "specie_name": specie, "anomaly": int(specie != "good")})
            info[key][cat] = records
    (root / "meta.json").write_text(json.dumps(info, indent=4) + "\n")
    return root


MAKERS = {
    "mvtec": make_mvtec, "visa": make_visa, "mpdd": make_mpdd, "btad": make_btad, "sdd": make_sdd,
    "dagm": make_dagm, "dtd": make_dtd, "isic": make_isic, "clinicdb": make_clinicdb, "colondb": make_colondb,
    "kvasir": make_kvasir, "endo": make_endo, "headct": make_headct, "brainmri": make_brainmri,
    "br35h": make_br35h, "realiad": make_realiad,
}


def make_fake_data_root(root: Path, names: tuple[str, ...] | list[str] | None = None) -> Path:
    """``root/<name>`` for every dataset in ``names`` (default: the 15 of the protocol plus realiad)."""
    for name in names if names is not None else MAKERS:
        MAKERS[name](Path(root) / name)
    return Path(root)


def defect_iou(image: np.ndarray, mask: np.ndarray) -> float:
    """IoU of a loaded mask with the bright defect box of its loaded image (1.0 when they coincide)."""
    bright = image.min(axis=2) > 200 if image.ndim == 3 else image > 200
    union = np.logical_or(bright, mask).sum()
    return float(np.logical_and(bright, mask).sum() / union) if union else 0.0
