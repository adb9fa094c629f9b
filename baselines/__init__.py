"""Classical detectors (Essentia SigClick, the 5-way audio-problem baseline): one file per detector."""


def essentia_standard():
    """``essentia.standard`` with Essentia's INFO log off (it prints a line on first import)."""
    import essentia

    essentia.log.infoActive = False
    import essentia.standard as es

    return es
