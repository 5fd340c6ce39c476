"""One module per pipeline stage; each asset is a thin wrapper over rr_assets.core."""
