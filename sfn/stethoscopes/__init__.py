"""The stethoscopes: Delta (weight change), surgery (Merge, Destruction, plugins) and Freeze (partial fine-tuning).

They live one level down so that the public functions `sfn.delta` and `sfn.freeze` never collide with
a subpackage of the same name.
"""
