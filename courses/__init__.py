"""Course catalogue, nbgrader sources and the machinery that proves them by grading."""
