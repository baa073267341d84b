# SPDX-License-Identifier: Apache-2.0
"""scale: OUTPUT = INPUT * 2 (FP32, shape [batch, n])."""

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Stateless model; the batch dimension passes straight through numpy."""

    def execute(self, requests):
        """Return each request's input multiplied by two."""
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "INPUT").as_numpy()
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("OUTPUT", data * 2)]))
        return responses
