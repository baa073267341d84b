# SPDX-License-Identifier: Apache-2.0
"""gpu_add: OUTPUT0 = INPUT0 * 2 and DEVICE_ID = the GPU of this instance (-1 on the CPU)."""

import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Reports the placement Triton gave this instance (args of the python backend)."""

    def initialize(self, args):
        """Keep the instance's device: model_instance_kind is "GPU" or "CPU"."""
        on_gpu = args["model_instance_kind"] == "GPU"
        self.device_id = int(args["model_instance_device_id"]) if on_gpu else -1

    def execute(self, requests):
        """Double each request's input and name the device of this instance."""
        device = np.array([self.device_id], dtype=np.int32)
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            outputs = [pb_utils.Tensor("OUTPUT0", data * 2), pb_utils.Tensor("DEVICE_ID", device)]
            responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
        return responses
