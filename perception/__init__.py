"""Cameras (RealSense live and playback, twin), multi-camera sync, RGB-D geometry and point clouds."""
