"""lettafleet in GitHub Actions: the plan of a pull request in one comment, and the reviewed plan applied on merge."""
