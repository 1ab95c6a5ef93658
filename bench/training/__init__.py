"""Training: losses and learning-rate schedules (knows no architecture).

Serves the training recipes of the pose tables (HRNet, Lite-HRNet, DPN protocols in
suites/protocols/).
"""
