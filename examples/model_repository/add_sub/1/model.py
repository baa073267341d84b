# SPDX-License-Identifier: Apache-2.0
"""add_sub: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (FP32, shape [4])."""

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """Stateless element-wise model; one response per request."""

    def execute(self, requests):
        """Return the sum and the difference of the two inputs of each request."""
        responses = []
        for request in requests:
            in0 = pb_utils.get_input_tensor_by_name(request, "INPUT0").as_numpy()
            in1 = pb_utils.get_input_tensor_by_name(request, "INPUT1").as_numpy()
            responses.append(
                pb_utils.InferenceResponse(
                    output_tensors=[
                        pb_utils.Tensor("OUTPUT0", in0 + in1),
                        pb_utils.Tensor("OUTPUT1", in0 - in1),
                    ]
                )
            )
        return responses
