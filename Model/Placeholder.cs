// Engine sources arrive in the next commit.
