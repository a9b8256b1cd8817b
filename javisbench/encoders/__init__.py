"""Lazy encoder registry: names map to ``module:Class`` strings, imported only when used."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from javisbench.encoders.base import Encoder

ENCODERS: dict[str, str] = {
    "i3d": "javisbench.encoders.i3d:I3DEncoder",
    "audioclip": "javisbench.encoders.audioclip:AudioCLIPEncoder",
    "imagebind": "javisbench.encoders.imagebind:ImageBindEncoder",
    "imagebind-avh": "javisbench.encoders.imagebind:ImageBindAVHEncoder",
    "clip": "javisbench.encoders.clip:ClipEncoder",
    "clap": "javisbench.encoders.clap:ClapEncoder",
    "synchformer": "javisbench.encoders.synchformer:SynchformerEncoder",
    "cavp": "javisbench.encoders.cavp:CAVPEncoder",
    "audiobox": "javisbench.encoders.audiobox:AudioboxEncoder",
    "videoreward": "javisbench.encoders.videoreward:VideoRewardEncoder",
    "avalign": "javisbench.encoders.avalign:AVAlignEncoder",
    # in-domain encoders trained on SynthAV (weights ship with the package; metrics "@synthav", never official)
    "synthav-av": "javisbench.encoders.synthav:SynthAVEncoder",
    "synthav-text": "javisbench.encoders.synthav:SynthAVTextEncoder",
    "synthav-sync": "javisbench.encoders.synthav:SynthAVSyncEncoder",
}


def encoder_class(name: str) -> "type[Encoder]":
    from javisbench.names import unknown_name

    try:
        target = ENCODERS[name]
    except KeyError:
        raise unknown_name("encoder", name, sorted(ENCODERS)) from None
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)
