"""ChArUco boards, intrinsics checks, hand-eye and multi-camera extrinsics, written back to the cell file."""
