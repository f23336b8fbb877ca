"""Text and annotations: synthetic reports, lexicons, corpus sources and builds, task files and
their readers, augmentation.
"""
