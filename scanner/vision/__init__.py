"""From camera frames to codes: the decoders, the frame loop, image files, aiming figures."""
