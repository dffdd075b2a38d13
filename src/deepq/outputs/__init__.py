"""What a finished run is shown as: the history plot, videos and windowed play, the HTML report,
and the pretrained agent shipped with deepq."""
