"""The paintings of the named scenes: one palette per icon, and each scene's panel specs.

`panel_specs(SCENES[name])` is what `training.scenes.make_scene` paints and simulates. The
palettes follow the study's icons (SCIENCE.md); `m6_corpus` jitters its recipes so element
maps take many values, and `m1_child` holds the alterations and the novel pigment (smalt)
that the RGB experiment and the trust score are judged on.
"""

from __future__ import annotations

import numpy as np

from training.catalogue import SceneConfig
from training.paintings import (
    Alteration,
    IconSpec,
    Palette,
    flesh_roles,
    gilding,
    paint,
    single,
)


def _virgin_palette() -> Palette:
    lake = paint("mantle_lake", {"red_lake": 1.0}, thickness_um=10, opacity=0.55)
    return {
        "background": gilding(),
        "halo": gilding(),
        "halo_ring": single("halo_ring", {"vermilion": 1.0}, 15),
        "border": single("border", {"vermilion": 0.7, "red_ochre": 0.3}),
        "inscription": single("inscription", {"vermilion": 1.0}, 20),
        "mantle": (lake, paint("mantle", {"red_ochre": 0.6, "vermilion": 0.3,
                                          "bone_black": 0.1}, thickness_um=40)),
        "mantle_fold": single("mantle_fold", {"red_ochre": 0.5, "raw_umber": 0.3,
                                              "bone_black": 0.2}, 40),
        "mantle_light": (lake, paint("mantle_light", {"red_ochre": 0.5, "lead_white": 0.5},
                                     thickness_um=40)),
        "cap": single("cap", {"azurite": 0.8, "lead_white": 0.2}, 40),
        "tunic": single("tunic", {"azurite": 1.0}, 40),
        "tunic_fold": single("tunic_fold", {"azurite": 0.7, "bone_black": 0.3}, 40),
        **flesh_roles(vermilion=0.1, ochre=0.2),
    }


def _child_palette() -> Palette:
    lake = paint("himation_lake", {"red_lake": 1.0}, thickness_um=12, opacity=0.6)
    return {
        "background": gilding(),
        "halo": gilding(),
        "halo_ring": single("halo_ring", {"vermilion": 1.0}, 15),
        "inscription": single("inscription", {"vermilion": 1.0}, 20),
        "border": single("border", {"vermilion": 0.7, "red_ochre": 0.3}),
        "mantle": (lake, paint("himation", {"vermilion": 0.7, "lead_white": 0.3},
                               thickness_um=35)),
        "mantle_fold": (lake, paint("himation_fold", {"vermilion": 0.6, "red_ochre": 0.4},
                                    thickness_um=35)),
        "mantle_light": (lake, paint("himation_light", {"vermilion": 0.4, "lead_white": 0.6},
                                     thickness_um=35)),
        "chrysography": (*gilding()[:1], lake,
                         paint("himation", {"vermilion": 0.7, "lead_white": 0.3},
                               thickness_um=35)),
        "tunic": single("tunic", {"smalt": 0.8, "lead_white": 0.2}, 45),
        "tunic_fold": single("tunic_fold", {"smalt": 0.7, "bone_black": 0.3}, 45),
        **flesh_roles(vermilion=0.14, ochre=0.18),
    }


def _jitter(rng: np.random.Generator, recipe: dict[str, float], amount: float = 0.3
            ) -> dict[str, float]:
    return {k: v * float(rng.uniform(1 - amount, 1 + amount)) for k, v in recipe.items()}


def _corpus_palette(i: int, rng: np.random.Generator) -> Palette:
    """Four panels with different palettes, recipes jittered so maps take many values."""
    j = lambda r: _jitter(rng, r)  # noqa: E731
    t = lambda: float(rng.uniform(20, 60))  # noqa: E731
    flesh = flesh_roles(vermilion=float(rng.uniform(0.05, 0.18)),
                        ochre=float(rng.uniform(0.1, 0.3)))
    painted_bg = {
        0: single("bg", j({"yellow_ochre": 0.8, "lead_white": 0.2}), t()),
        1: single("bg", j({"azurite": 0.6, "bone_black": 0.2, "lead_white": 0.2}), t()),
        2: single("bg", j({"malachite": 0.5, "yellow_ochre": 0.5}), t()),
        3: single("bg", j({"red_ochre": 0.7, "lead_white": 0.3}), t()),
    }
    schemes = [
        dict(mantle={"red_ochre": 0.6, "vermilion": 0.3, "bone_black": 0.1},
             light={"red_ochre": 0.4, "lead_white": 0.6},
             tunic={"azurite": 0.9, "lead_white": 0.1}, ring={"vermilion": 1.0},
             inscription={"vermilion": 1.0}),
        dict(mantle={"malachite": 0.8, "lead_white": 0.2},
             light={"malachite": 0.4, "orpiment": 0.3, "lead_white": 0.3},
             tunic={"red_lead": 0.8, "vermilion": 0.2}, ring={"red_lead": 1.0},
             inscription={"orpiment": 1.0}),
        dict(mantle={"verdigris": 0.7, "lead_white": 0.3},
             light={"verdigris": 0.3, "lead_white": 0.7},
             tunic={"vermilion": 0.8, "red_lake": 0.2}, ring={"red_ochre": 1.0},
             inscription={"lead_white": 1.0}),
        dict(mantle={"red_lead": 0.6, "yellow_ochre": 0.4},
             light={"orpiment": 0.5, "red_lead": 0.5},
             tunic={"prussian_blue": 0.5, "lead_white": 0.5}, ring={"vermilion": 0.5,
                                                                  "red_lead": 0.5},
             inscription={"smalt": 0.8, "lead_white": 0.2}),
    ]
    s = schemes[i % len(schemes)]
    gold_bg = i in (0, 3)
    mantle = paint("mantle", j(s["mantle"]), thickness_um=t())
    return {
        "background": gilding() if gold_bg else painted_bg[i % 4],
        "halo": gilding(),
        "halo_ring": single("halo_ring", s["ring"], 15),
        "border": single("border", j({"red_ochre": 0.6, "vermilion": 0.2, "raw_umber": 0.2})),
        "inscription": single("inscription", s["inscription"], 20),
        "mantle": (mantle,),
        "mantle_fold": single("mantle_fold", j({**s["mantle"], "raw_umber": 0.3,
                                                "bone_black": 0.1}), t()),
        "mantle_light": single("mantle_light", j(s["light"]), t()),
        "chrysography": (*gilding()[:1], mantle),
        "cap": single("cap", j({"azurite": 0.7, "lead_white": 0.3}), t()),
        "tunic": single("tunic", j(s["tunic"]), t()),
        "tunic_fold": single("tunic_fold", j({**s["tunic"], "bone_black": 0.3}), t()),
        **flesh,
    }


def _ioannis_palette() -> Palette:
    """St. Ioannis: red himation with gold chrysography (Au/Hg), yellow orpiment + lead white
    tunic (As/Pb), orange orpiment + vermilion highlights (As/Hg), grey-brown hair."""
    himation = paint("himation", {"vermilion": 0.75, "red_ochre": 0.25}, thickness_um=35)
    return {
        "background": gilding(),
        "halo": gilding(),
        "halo_ring": single("halo_ring", {"red_lead": 1.0}, 15),
        "border": single("border", {"malachite": 0.7, "lead_white": 0.3}),
        "inscription": single("inscription", {"vermilion": 0.6, "lead_white": 0.4}, 20),
        "mantle": (himation,),
        "mantle_fold": single("himation_fold", {"vermilion": 0.5, "bone_black": 0.2,
                                                "raw_umber": 0.3}, 35),
        "mantle_light": single("himation_light", {"orpiment": 0.5, "vermilion": 0.5}, 30),
        "chrysography": (*gilding()[:1], himation),
        "tunic": single("tunic", {"orpiment": 0.45, "lead_white": 0.55}, 35),
        "tunic_fold": single("tunic_fold", {"orpiment": 0.5, "yellow_ochre": 0.3,
                                            "raw_umber": 0.2}, 35),
        **flesh_roles(vermilion=0.08, ochre=0.28),
        "hair": single("hair", {"raw_umber": 0.5, "lead_white": 0.3, "bone_black": 0.2}, 30),
    }



def panel_specs(config: SceneConfig) -> list[IconSpec]:
    """The painting(s) of a scene, in row-major panel order."""
    if config.name == "m1_virgin":
        return [IconSpec("virgin_face", _virgin_palette(), figure="virgin",
                         crop=(0.375, 0.36, 0.4), seed=config.seed)]
    if config.name == "m1_child":
        over = paint("retouch", {"raw_umber": 0.4, "yellow_ochre": 0.3, "lead_white": 0.3},
                     thickness_um=30, binder="linseed_oil")
        return [IconSpec(
            "child", _child_palette(), figure="child", inscriptions=("ΙϹ", "ΧϹ"),
            crop=(0.375, 0.5, 0.75), chrysography=True, seed=config.seed, face_scale=0.9,
            novel_pigments=frozenset({"smalt"}),
            alterations=(
                Alteration("fade", (0.27, 0.68), (0.09, 0.1)),
                Alteration("overpaint", (0.5, 0.72), (0.06, 0.07), over),
                Alteration("darken", (0.55, 0.25), (0.1, 0.09)),
            ))]
    if config.name == "m6_corpus":
        rng = np.random.default_rng(config.seed)
        figures = ("virgin", "saint", "child", "saint")
        texts = (("ΜΡ", "ΘΥ"), ("Ο ΑΓ", "ΝΙΚ"), ("ΙϹ", "ΧϹ"), ("Ο ΑΓ", "ΓΕΩΡ"))
        return [IconSpec(f"corpus_{i}", _corpus_palette(i, rng), figure=figures[i],
                         inscriptions=texts[i], chrysography=i in (1, 3),
                         seed=config.seed + i, face_scale=float(rng.uniform(0.85, 1.15)),
                         fold_frequency=float(rng.uniform(20, 40)),
                         # square panels: a 0.75 x 0.75 window of the figure, upper or middle
                         crop=(0.375, 0.42, 0.75) if i % 2 == 0 else (0.375, 0.5, 0.75))
                for i in range(config.n_panels)]
    if config.name.startswith("m6_ioannis"):
        return [IconSpec("ioannis", _ioannis_palette(), figure="saint",
                         inscriptions=("Ο ΑΓ", "ΙΩΑΝ"), chrysography=True, seed=config.seed,
                         face_scale=0.95, fold_frequency=33.0)]
    raise KeyError(config.name)

