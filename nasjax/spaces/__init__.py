"""Search spaces (positions x choices), their registry and codecs to each paper's native format."""

from nasjax.spaces import binas, fbnetv3, mobilenetv3, nasbench201, supertransformer, supervit  # noqa: F401  (registration)
from nasjax.spaces.base import SPACES, SearchSpace, get_space, product_space  # noqa: F401
