"""Fine-tune, export and predict from Python (what `make demo` does through the CLI).

    python examples/python_api.py
"""

import zoo

result = zoo.finetune(model="resnet18_cifar", data="digits", epochs=2, batch_size=64, output="runs/api-demo",
                      overwrite=True)
print(f"best val top-1 {result.best_top1:.3f} in {result.run_dir}")
exported = zoo.export(result.run_dir, format="onnx")
print({fmt: report["max_abs_diff"] for fmt, report in exported.parity.items()})
dataset = zoo.create_dataset("digits")
dataset.eval.load(0).save("runs/api-demo/sample.png")
print(zoo.predict(exported.files["onnx"], ["runs/api-demo/sample.png"], top_k=3))
