"""``translator bench``: latency and accuracy of the live pipeline on a real speech corpus.

cli (the command), corpus (manifest, clip selection), runner (one clip at real-time pace), spans
(compute time through the pipeline's observer hook), baseline (stock faster-whisper), scoring
(WER/CER), report (figures and tables), plot (the timeline).
"""
