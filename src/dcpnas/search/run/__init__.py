"""The run machinery: the steps and the driver of an epoch, the learners, the loop with its logs
and checkpoints, reporting, the search inputs and the ``search`` entry point."""
