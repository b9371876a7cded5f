"""Datasets: sources (embedded and remote), fetching, readers and the canonical on-disk forms.

- :mod:`simlearn.data.sources`: ``DatasetConfig``, the ``SOURCES`` registry and
  ``build_dataset``, the entry point of the ``download@<dataset>`` stage.
- :mod:`simlearn.data.fetch`: checksummed, resumable downloads; bad files moved aside.
- :mod:`simlearn.data.extract`: safe archive extraction (no escapes, size and ratio caps).
- :mod:`simlearn.data.readers`: PFM, KITTI 16-bit PNG disparities, Middlebury calib.txt, the
  Sketchy folder layout.
- :mod:`simlearn.data.canonical`: the canonical writers (kinds ``images``, ``stereo``,
  ``sketch``), the leak-free split logic and the atomic output folder.
- :mod:`simlearn.data.image_files`: kind ``files``, image sets that stay on disk (a user's
  ``image_folder`` or ``manifest``, the CUB-200 / Cars196 / SOP benchmarks): the writer
  (byte-for-byte copies plus the manifest), :class:`~simlearn.data.image_files.FileImages`
  (rows decoded when indexed, in a thread pool) and ``device_images`` (batches for training).
- :mod:`simlearn.data.image_dataset`: ``load_image_dataset``, the labelled-image loader of kinds
  ``images`` and ``files``.
- :mod:`simlearn.data.synthetic_sketch`: the generated sketch/photo set.

Nothing is imported here, so that importing one module does not pull in torchvision.
"""
