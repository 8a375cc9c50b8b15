"""Runs `train.run` in a fresh process, for tests needing their own TF devices.

usage: python -m tests.trainer.distributed_worker CONFIG_JSON [LOGICAL_CPUS]

CONFIG_JSON maps model_dir -> TrainConfig dict; each is trained in turn in
this process (after splitting the CPU into LOGICAL_CPUS logical devices).
TF_CONFIG, when set, makes the process one worker of a cluster.
"""

import json
import sys

from bertline.trainer import strategy, train


def main(argv):
  runs = json.loads(argv[1])
  if len(argv) > 2 and int(argv[2]) > 1:
    strategy.use_logical_cpus(int(argv[2]))
  for values in runs:
    result = train.run(train.TrainConfig.from_dict(values))
    print("RESULT", json.dumps({"model_dir": values["model_dir"], "step": result.final_step,
                                "metrics": result.final_metrics}), flush=True)


if __name__ == "__main__":
  main(sys.argv)
