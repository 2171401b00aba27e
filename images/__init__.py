"""Container images: references, stores, rootfs backends and offline recipes."""
