"""The engine tasks: what :func:`simlearn.engine.fit` trains for each task, one module each.

An engine task (:class:`simlearn.engine.Task`) holds the model being trained, draws the batches
of an epoch from (seed, epoch, rank), computes the batch loss and a cheap validation figure:

- :mod:`~simlearn.training.metric`: :class:`~simlearn.training.metric.MetricTask`, an image
  embedding from pairs, triplets or P x K batches and a metric-learning loss;
- :mod:`~simlearn.training.simclr`: :class:`~simlearn.training.simclr.SimCLRTask`, NT-Xent
  between two random views of each image;
- :mod:`~simlearn.training.sbir`: :class:`~simlearn.training.sbir.SBIRTask`, two towers (sketch,
  photo) and a cross-domain loss;
- :mod:`~simlearn.training.stereo`: :class:`~simlearn.training.stereo.PatchTripletTask`, the
  MC-CNN patch network on triplets of 9x9 patches.

:mod:`~simlearn.training.image_embedder` holds what the metric and simclr tasks both export;
:mod:`~simlearn.training.read_ahead` decodes their next batch of images from files while the
network works on this one.

The task modules (:mod:`simlearn.tasks`) build these from a checked config and hand them to the
engine; this package never imports :mod:`simlearn.tasks`. Apart from the stereo module, torch is
imported where it is used, so that a task module importing its engine task at load time keeps
loading params fast.
"""
